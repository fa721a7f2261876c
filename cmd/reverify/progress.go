package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows long work: a bar on a terminal, a plain line every few
// seconds otherwise (logs, CI).
type progress struct {
	bar      *progressbar.ProgressBar
	w        io.Writer
	label    string
	every    time.Duration
	lastLine time.Time
}

func newProgress(w io.Writer, label string, total int64) *progress {
	p := &progress{w: w, label: label, every: 2 * time.Second}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("img"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

// set reports done of total with a detail such as counts by status.
func (p *progress) set(done, total int64, detail string) {
	if p.bar != nil {
		if total > 0 && p.bar.GetMax64() != total {
			p.bar.ChangeMax64(total)
		}
		p.bar.Describe(p.label + " " + detail)
		_ = p.bar.Set64(done)
		return
	}
	if time.Since(p.lastLine) < p.every {
		return
	}
	p.lastLine = time.Now()
	if total > 0 {
		fmt.Fprintf(p.w, "%s %d/%d (%.0f%%) %s\n", p.label, done, total, 100*float64(done)/float64(total), detail)
	} else {
		fmt.Fprintf(p.w, "%s %d %s\n", p.label, done, detail)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
