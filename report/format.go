package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"reverify/storage/postgres"
)

// Formats WriteTable understands.
const (
	FormatTable = "table"
	FormatCSV   = "csv"
	FormatJSON  = "json"
)

// WriteTable prints t in format: an aligned table for people, CSV with a
// header row, or a JSON array of objects.
func WriteTable(w io.Writer, format string, t postgres.Table) error {
	switch format {
	case FormatTable, "":
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.ToUpper(strings.Join(t.Columns, "\t")))
		for _, row := range t.Rows {
			cells := make([]string, len(row))
			for i, v := range row {
				cells[i] = cell(v)
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		return tw.Flush()
	case FormatCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(t.Columns); err != nil {
			return err
		}
		for _, row := range t.Rows {
			cells := make([]string, len(row))
			for i, v := range row {
				cells[i] = cell(v)
			}
			if err := cw.Write(cells); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	case FormatJSON:
		out := make([]map[string]any, 0, len(t.Rows))
		for _, row := range t.Rows {
			out = append(out, rowMap(t.Columns, row))
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return fmt.Errorf("unknown format %q: want table, csv or json", format)
}

func rowMap(cols []string, row []any) map[string]any {
	m := make(map[string]any, len(cols))
	for i, c := range cols {
		m[c] = jsonValue(row[i])
	}
	return m
}

// jsonValue turns pgx values into plain JSON values (numerics as numbers,
// UUIDs as strings).
func jsonValue(v any) any {
	switch x := v.(type) {
	case pgtype.Numeric:
		if !x.Valid {
			return nil
		}
		f, err := x.Float64Value()
		if err != nil || !f.Valid {
			return nil
		}
		return f.Float64
	case [16]byte:
		return cell(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	}
	return v
}

// cell formats one value for a table or CSV cell.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case [16]byte:
		return fmt.Sprintf("%x-%x-%x-%x-%x", x[0:4], x[4:6], x[6:8], x[8:10], x[10:16])
	case pgtype.Numeric:
		if !x.Valid {
			return ""
		}
		if x.NaN {
			return "NaN"
		}
		return numericString(x)
	case map[string]any:
		b, _ := json.Marshal(x)
		return string(b)
	case []any: // a JSON list: its items may hold spaces and commas
		b, _ := json.Marshal(jsonValue(x))
		return string(b)
	case float64:
		return fmt.Sprintf("%.2f", x)
	}
	return fmt.Sprint(v)
}

// numericString prints a numeric exactly as PostgreSQL would.
func numericString(n pgtype.Numeric) string {
	if n.Int == nil {
		return "0"
	}
	s := new(big.Int).Abs(n.Int).String()
	neg := n.Int.Sign() < 0
	switch {
	case n.Exp > 0:
		s += strings.Repeat("0", int(n.Exp))
	case n.Exp < 0:
		d := int(-n.Exp)
		if len(s) <= d {
			s = strings.Repeat("0", d-len(s)+1) + s
		}
		s = s[:len(s)-d] + "." + s[len(s)-d:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
