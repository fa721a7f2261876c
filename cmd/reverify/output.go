package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// Output formats of -o/--output. table is for people; json and yaml print
// one document per invocation, for scripts; csv only where the data is one
// table.
const (
	outTable = "table"
	outJSON  = "json"
	outYAML  = "yaml"
	outCSV   = "csv"
)

// outputFlag is the -o/--output flag: one of the formats its command
// allows, checked when the flag is parsed (a wrong one is a usage error).
type outputFlag struct {
	value   string
	allowed []string
}

func (o *outputFlag) String() string { return o.value }
func (o *outputFlag) Type() string   { return "format" }

func (o *outputFlag) Set(s string) error {
	if !slices.Contains(o.allowed, s) {
		return fmt.Errorf("want %s", strings.Join(o.allowed, ", "))
	}
	o.value = s
	return nil
}

// structured reports whether the output is a document (json, yaml).
func (o *outputFlag) structured() bool { return o.value == outJSON || o.value == outYAML }

// addOutputFlag gives cmd -o/--output with the formats allowed (table,
// json and yaml when none are given), table by default.
func addOutputFlag(cmd *cobra.Command, allowed ...string) *outputFlag {
	if len(allowed) == 0 {
		allowed = []string{outTable, outJSON, outYAML}
	}
	o := &outputFlag{value: outTable, allowed: allowed}
	cmd.Flags().VarP(o, "output", "o", "output format: "+strings.Join(allowed, ", "))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp))
	return o
}

// writeDoc prints v as one JSON or YAML document. YAML is the JSON
// document re-encoded, so both have the same fields in the same order.
func writeDoc(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	if format != outYAML {
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	blockStyle(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// blockStyle drops the flow style and quotes a node read from JSON has,
// so it prints as ordinary YAML (the encoder still quotes a string that
// would read back as another type).
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}
