package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// versionInfo is what `reverify version` prints, from the build
// information the Go toolchain stamps into the binary.
type versionInfo struct {
	Version  string `json:"version"`            // the module version: a tag, a pseudo-version, or (devel)
	Revision string `json:"revision,omitempty"` // the VCS commit
	Time     string `json:"time,omitempty"`     // the commit's time
	Modified bool   `json:"modified"`           // built from a tree with uncommitted changes
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func buildVersion() versionInfo {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(bi)
}

// versionOf reads bi (nil when the binary has none).
func versionOf(bi *debug.BuildInfo) versionInfo {
	v := versionInfo{Version: "(unknown)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	v.Go = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func (a *app) versionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version: module version, VCS revision and time, Go version",
		Example: `  reverify version
  reverify version -o json | jq -r .revision`,
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(*cobra.Command, []string) error {
		v := buildVersion()
		if out.structured() {
			return writeDoc(a.stdout, out.value, v)
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "version\t%s\n", v.Version)
		if v.Revision != "" {
			mod := ""
			if v.Modified {
				mod = " (modified)"
			}
			fmt.Fprintf(tw, "revision\t%s%s\n", v.Revision, mod)
		}
		if v.Time != "" {
			fmt.Fprintf(tw, "time\t%s\n", v.Time)
		}
		fmt.Fprintf(tw, "go\t%s\n", v.Go)
		fmt.Fprintf(tw, "platform\t%s\n", v.Platform)
		return tw.Flush()
	}
	return cmd
}
