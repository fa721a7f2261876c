package main

import (
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"slices"
	"strings"
)

// latencyChart draws case 3 as an SVG: images/s at each concurrency level
// for the whole pipeline and for queueing alone, against Little's law,
// with how busy the machine was under each point of the pipeline and the
// rate at which its cores would all be busy. A picture says at a glance
// where the pipeline leaves the ideal line, and whether the machine did.
func latencyChart(r *report) string {
	type point struct {
		c          int
		ideal      float64
		real, wait float64
		busy       float64
		ceiling    float64 // the machine's CPU ceiling at this level
	}
	byC := map[int]*point{}
	for _, f := range r.Latency {
		p := byC[f.Concurrency]
		if p == nil {
			p = &point{c: f.Concurrency}
			byC[f.Concurrency] = p
		}
		switch {
		case strings.Contains(f.Case, "wait-only handler, reverify lanes"):
			p.wait = f.ImagesPerSec
		case !strings.Contains(f.Case, "wait-only") && f.Dispatch != dispatchPreEnqueued && !f.TLS:
			p.real, p.ideal, p.busy, p.ceiling = f.ImagesPerSec, f.LittleRate, f.MachineBusy, f.MachineCeiling
		}
	}
	var pts []*point
	top := 0.0
	for _, p := range byC {
		if p.real > 0 {
			pts = append(pts, p)
			top = max(top, p.ideal, p.real, p.wait, min(p.ceiling, 1.5*p.ideal))
		}
	}
	if len(pts) == 0 {
		return ""
	}
	slices.SortFunc(pts, func(a, b *point) int { return a.c - b.c })

	const w, h, left, right, topPad, bottom = 740, 380, 70, 250, 40, 70
	plotW, plotH := float64(w-left-right), float64(h-topPad-bottom)
	x := func(i int) float64 {
		if len(pts) == 1 {
			return left + plotW/2
		}
		return left + plotW*float64(i)/float64(len(pts)-1)
	}
	step := niceStep(top * 1.05 / 5)
	ymax := math.Ceil(top*1.05/step) * step
	y := func(v float64) float64 { return topPad + plotH*(1-v/ymax) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14" font-weight="bold">Case 3: images/s at API latency %s, one worker (%s)</text>`+"\n",
		left, html.EscapeString(latencyLabel(r)), html.EscapeString(r.Commit))
	// Axes and grid.
	for v := 0.0; v <= ymax; v += step {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n",
			left, w-right, y(v), y(v), left-6, y(v)+4, v)
	}
	fmt.Fprintf(&b, `<text x="16" y="%.1f" transform="rotate(-90 16 %.1f)" text-anchor="middle">images per second</text>`+"\n", topPad+plotH/2, topPad+plotH/2)
	for i, p := range pts {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">C=%d</text>`+"\n", x(i), h-bottom+18, p.c)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#666">machine %.0f%% busy</text>`+"\n", x(i), h-bottom+34, 100*p.busy)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">worker concurrency</text>`+"\n", left+plotW/2, h-12)

	series := []struct {
		name, color, dash string
		v                 func(*point) float64
	}{
		{"queueing alone (wait-only handler)", "#2a9d4b", "", func(p *point) float64 { return p.wait }},
		{"whole pipeline", "#1f5fbf", "", func(p *point) float64 { return p.real }},
		{"C ÷ L (Little's law)", "#555", "6 4", func(p *point) float64 { return p.ideal }},
		{"this machine's CPU ceiling", "#d9822b", "2 3", func(p *point) float64 { return min(p.ceiling, top*1.05) }},
	}
	for si, s := range series {
		var path []string
		for i, p := range pts {
			if v := s.v(p); v > 0 {
				path = append(path, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
			}
		}
		if len(path) == 0 {
			continue
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", strings.Join(path, " "), s.color, s.dash)
		for i, p := range pts {
			v := s.v(p)
			if v <= 0 || s.dash != "" {
				continue
			}
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", x(i), y(v), s.color)
			if s.name == "whole pipeline" {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s">%.0f (%.2f)</text>`+"\n", x(i)+7, y(v)+14, s.color, v, v/p.ideal)
			}
		}
		ly := topPad + 16 + 20*si
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			w-right+12, w-right+32, ly, ly, s.color, s.dash, w-right+36, ly+4, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceStep rounds raw up to 1, 2, 2.5 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

func latencyLabel(r *report) string {
	for _, f := range r.Latency {
		if f.LatencyMS > 0 && !strings.Contains(f.Case, "wait-only") {
			return fmt.Sprintf("%d ms, %d KB images", f.LatencyMS, f.ImageKB)
		}
	}
	return "?"
}

// writeChart writes the case 3 chart beside the JSON figures (path with
// .svg for .json); nothing when case 3 did not run.
func writeChart(jsonPath string, r *report) (string, error) {
	svg := latencyChart(r)
	if svg == "" {
		return "", nil
	}
	path := strings.TrimSuffix(jsonPath, ".json") + "-latency.svg"
	if err := os.WriteFile(path, []byte(svg), 0o644); err != nil {
		return "", fmt.Errorf("write chart: %w", err)
	}
	return path, nil
}

// chartOf draws the chart of a JSON written by an earlier run.
func chartOf(jsonPath string) error {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return fmt.Errorf("read figures: %w", err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("read figures %s: %w", jsonPath, err)
	}
	path, err := writeChart(jsonPath, &r)
	if err != nil {
		return err
	}
	if path == "" {
		return fmt.Errorf("%s has no case 3 figures", jsonPath)
	}
	logf("case 3 chart written to %s", path)
	return nil
}
