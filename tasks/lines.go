package tasks

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxLine bounds one line of a manifest or inventory (or one CSV record,
// which spans lines when a quoted key holds a line break), line ending
// included. An S3 key is at most 1,024 bytes, so no usable line comes
// near it; a longer one is skipped without ever being held in memory.
const maxLine = 16 << 10

// lineReader reads lines of at most max bytes. The bytes of a longer
// line are dropped as they are read, so memory stays flat whatever the
// input holds.
type lineReader struct {
	br   *bufio.Reader
	max  int
	line int // number of the line last returned, from 1
	buf  []byte
}

func newLineReader(br *bufio.Reader, max int) *lineReader {
	return &lineReader{br: br, max: max}
}

// next returns the next line without its ending ("\n" or "\r\n"); the
// slice is reused by the next call. long reports a line over the limit,
// returned empty. err is io.EOF after the last line, else the reader's.
func (lr *lineReader) next() (text []byte, long bool, err error) {
	lr.buf = lr.buf[:0]
	seen := 0
	for {
		chunk, err := lr.br.ReadSlice('\n')
		seen += len(chunk)
		if !long {
			if len(lr.buf)+len(chunk) > lr.max {
				long, lr.buf = true, lr.buf[:0]
			} else {
				lr.buf = append(lr.buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil && !errors.Is(err, io.EOF):
			return nil, false, err
		case err != nil && seen == 0:
			return nil, false, io.EOF
		}
		lr.line++
		text = lr.buf
		if n := len(text); n > 0 && text[n-1] == '\n' {
			text = text[:n-1]
			if n := len(text); n > 0 && text[n-1] == '\r' {
				text = text[:n-1]
			}
		}
		return text, long, nil
	}
}

// tooLong is the reason a line over the limit is skipped.
func tooLong(max int) string { return fmt.Sprintf("line is longer than %d bytes", max) }

// csvReader reads CSV records (RFC 4180: a field may be quoted, a quote
// inside doubled, and a quoted field may span lines) of at most max
// bytes, blank lines skipped, through a lineReader.
type csvReader struct {
	lr     *lineReader
	fields []string
}

func newCSVReader(br *bufio.Reader, max int) *csvReader {
	return &csvReader{lr: newLineReader(br, max)}
}

// errOpenQuote: the record ends inside a quoted field (so far).
var errOpenQuote = errors.New("open quoted field")

// read returns the next record and the line it starts on. A record that
// cannot be used comes back with a reason (and no fields) for the caller
// to report and skip; err is io.EOF at the end, else the reader's. The
// fields are reused by the next call.
func (cr *csvReader) read() (rec []string, line int, reason string, err error) {
	var text string
	for {
		b, long, err := cr.lr.next()
		if err != nil {
			return nil, 0, "", err
		}
		if long {
			return nil, cr.lr.line, tooLong(cr.lr.max), nil
		}
		if len(b) > 0 {
			text = string(b)
			break
		}
	}
	line = cr.lr.line
	for {
		cr.fields, err = splitCSV(text, cr.fields[:0])
		if !errors.Is(err, errOpenQuote) {
			break
		}
		b, long, nerr := cr.lr.next()
		switch {
		case errors.Is(nerr, io.EOF):
			return nil, line, csv.ErrQuote.Error(), nil
		case nerr != nil:
			return nil, 0, "", nerr
		case long || len(text)+1+len(b) > cr.lr.max:
			return nil, line, tooLong(cr.lr.max), nil
		}
		text += "\n" + string(b)
	}
	if err != nil {
		return nil, line, err.Error(), nil
	}
	return cr.fields, line, "", nil
}

// splitCSV splits one record's text into fields, appended to fields.
// Unquoted fields are substrings of s; a field holding a quote must be
// quoted, as encoding/csv wants by default.
func splitCSV(s string, fields []string) ([]string, error) {
	for {
		if strings.HasPrefix(s, `"`) {
			var val strings.Builder
			i := 1
			for {
				j := strings.IndexByte(s[i:], '"')
				if j < 0 {
					return fields, errOpenQuote
				}
				val.WriteString(s[i : i+j])
				i += j + 1
				if i < len(s) && s[i] == '"' {
					val.WriteByte('"')
					i++
					continue
				}
				break
			}
			fields = append(fields, val.String())
			s = s[i:]
			if s == "" {
				return fields, nil
			}
			if s[0] != ',' {
				return fields, csv.ErrQuote
			}
			s = s[1:]
			continue
		}
		field, rest, more := strings.Cut(s, ",")
		if strings.Contains(field, `"`) {
			return fields, csv.ErrBareQuote
		}
		fields = append(fields, field)
		if !more {
			return fields, nil
		}
		s = rest
	}
}
