package dashboard

import (
	"fmt"
	"html/template"
	"reverify"
	"strings"

	"reverify/storage/postgres"
)

// histogramSVG draws score bands as bars; bands under the review
// threshold are drawn in the warning colour. Server-rendered, so the page
// needs no script.
func histogramSVG(bands [10]int64, threshold float64) template.HTML {
	const w, h, pad, bottom = 520, 200, 28, 24
	var peak int64 = 1
	for _, n := range bands {
		peak = max(peak, n)
	}
	barW := float64(w-2*pad) / 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="histogram" role="img" aria-label="score histogram" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`, w, h, w, h)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`, pad, h-bottom, w-pad, h-bottom)
	for i, n := range bands {
		x := float64(pad) + float64(i)*barW
		barH := float64(h-bottom-2*pad) * float64(n) / float64(peak)
		y := float64(h-bottom) - barH
		class := "bar"
		if float64(i*10) < threshold {
			class = "bar low"
		}
		lo, hi := i*10, i*10+10
		fmt.Fprintf(&b, `<rect class="%s" data-band="%d" data-count="%d" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%d–%d: %d</title></rect>`,
			class, lo, n, x+2, y, barW-4, barH, lo, hi, n)
		if n > 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11">%d</text>`, x+barW/2, y-4, n)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="11" fill="#555">%d</text>`, x+barW/2, h-bottom+14, lo)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" font-size="11" fill="#555">score</text></svg>`, w-pad, h-2)
	return template.HTML(b.String()) //nolint:gosec // built from numbers only
}

// statusColors are shared by the progress bar and the legend.
var statusColors = map[reverify.Status]string{
	reverify.StatusScored: "#2e7d32", reverify.StatusRejected: "#ef6c00", reverify.StatusInvalidImage: "#8d6e63",
	reverify.StatusNotFound: "#6d4c41", reverify.StatusFailed: "#c62828", reverify.StatusPending: "#cfd8dc",
	reverify.StatusCancelled: "#90a4ae",
}

var statusOrder = []reverify.Status{
	reverify.StatusScored, reverify.StatusRejected, reverify.StatusInvalidImage, reverify.StatusNotFound,
	reverify.StatusFailed, reverify.StatusCancelled, reverify.StatusPending,
}

// progressSVG draws a run's objects as one bar split by status.
func progressSVG(r postgres.RunCounts) template.HTML {
	const w, h = 320, 14
	var sum int64
	for _, n := range r.ByStatus {
		sum += n
	}
	total := max(r.Run.Total, sum, 1)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="progress" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg"><rect width="%d" height="%d" fill="#eceff1"/>`, w, h, w, h, w, h)
	x := 0.0
	for _, s := range statusOrder {
		n := r.ByStatus[s]
		if n == 0 {
			continue
		}
		width := float64(w) * float64(n) / float64(total)
		fmt.Fprintf(&b, `<rect x="%.1f" width="%.1f" height="%d" fill="%s"><title>%s: %d</title></rect>`, x, width, h, statusColors[s], s, n)
		x += width
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and fixed names
}
