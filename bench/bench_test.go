package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWindowIsTheMiddleOfTheRun(t *testing.T) {
	t0 := time.Unix(0, 0)
	var samples []sample
	for i := range 11 {
		samples = append(samples, sample{at: t0.Add(time.Duration(i) * time.Second), done: i * 10})
	}
	a, b := window(samples, 100)
	if a.done != 10 || b.done != 90 {
		t.Fatalf("window = %d..%d, want 10..90", a.done, b.done)
	}
}

func TestCategoriseTakesTheFirstCategoryOfTheStack(t *testing.T) {
	cats := newCategories()
	for _, tc := range []struct {
		frames []string
		want   string
	}{
		{[]string{"encoding/base64.(*Encoding).Encode", "reverify/liveness.(*bodyReader).Read", "net/http.(*persistConn).writeLoop"}, "base64"},
		{[]string{"internal/runtime/syscall/linux.Syscall6", "net.(*conn).Write", "net/http.(*persistConn).writeLoop"}, "HTTP transport (S3 + API)"},
		{[]string{"runtime.mallocgc", "github.com/jackc/pgx/v5/pgproto3.(*Frontend).Receive"}, "PostgreSQL (pgx)"},
		{[]string{"runtime.gcDrain", "runtime.gcBgMarkWorker"}, "GC"},
		{[]string{"main.main"}, "other"},
	} {
		if got := categorise(cats, tc.frames); got != tc.want {
			t.Errorf("categorise(%v) = %q, want %q", tc.frames, got, tc.want)
		}
	}
}

func TestIntsAndCount(t *testing.T) {
	got, err := ints("100000, 1000000,")
	if err != nil || len(got) != 2 || got[1] != 1_000_000 {
		t.Fatalf("ints = %v, %v", got, err)
	}
	if _, err := ints("ten"); err == nil {
		t.Fatal("ints accepted a word")
	}
	if count(1_000_000) != "1M" || count(100_000) != "100k" || count(1500) != "1500" {
		t.Fatalf("count: %s %s %s", count(1_000_000), count(100_000), count(1500))
	}
}

// TestLatencyChart draws case 3 from figures of three levels: one point
// per level for each series, the ideal and ceiling lines dashed, values
// labelled.
func TestLatencyChart(t *testing.T) {
	r := &report{Commit: "abc", Latency: []pipelineFigures{
		{Case: "C=50, L=200ms, wait-only handler, reverify lanes", Concurrency: 50, ImagesPerSec: 249},
		{Case: "C=50, L=200ms", Concurrency: 50, ImagesPerSec: 240, LittleRate: 250, MachineBusy: 0.4, MachineCeiling: 1200, LatencyMS: 200, ImageKB: 100},
		{Case: "C=500, L=200ms", Concurrency: 500, ImagesPerSec: 1000, LittleRate: 2500, MachineBusy: 0.98, MachineCeiling: 1100, LatencyMS: 200, ImageKB: 100},
		{Case: "C=200, L=200ms", Concurrency: 200, ImagesPerSec: 800, LittleRate: 1000, MachineBusy: 0.85, MachineCeiling: 1000, LatencyMS: 200, ImageKB: 100},
	}}
	svg := latencyChart(r)
	require.True(t, strings.HasPrefix(svg, "<svg"), svg)
	require.Equal(t, 4, strings.Count(svg, "<polyline"), "ideal, machine ceiling, queueing alone and pipeline")
	require.Equal(t, 4, strings.Count(svg, "<circle"), "three pipeline points and one queueing point")
	for _, want := range []string{"C=50", "C=200", "C=500", "240 (0.96)", "800 (0.80)", "1000 (0.40)", "machine 98% busy", "200 ms, 100 KB images", "CPU ceiling"} {
		require.Contains(t, svg, want)
	}
	require.Less(t, strings.Index(svg, ">C=50<"), strings.Index(svg, ">C=200<"), "levels in order")
	require.Empty(t, latencyChart(&report{}), "no case 3, no chart")
}

func TestNiceStep(t *testing.T) {
	for raw, want := range map[float64]float64{525: 1000, 210: 250, 0.3: 0.5, 100: 100, 1.2: 2} {
		require.Equal(t, want, niceStep(raw), "niceStep(%v)", raw)
	}
}

// TestVariantsArePairedWithTheirSpec: the feeder's run is set against the
// pre-enqueued run of the same spec, the TLS run's CPU against the plain
// one, and the chart draws the feeder's runs only.
func TestVariantsArePairedWithTheirSpec(t *testing.T) {
	spec := func(c int, rate, cpu float64, dispatch string, tls bool) pipelineFigures {
		name := fmt.Sprintf("C=%d, L=200ms", c)
		switch {
		case tls:
			name += ", TLS"
		case dispatch == dispatchPreEnqueued:
			name += ", pre-enqueued"
		}
		return pipelineFigures{Case: name, Images: 100 * c, ImageKB: 100, Concurrency: c, LatencyMS: 200, ImagesPerSec: rate,
			CPUMsPerImage: cpu, LittleRate: float64(c) * 5, Dispatch: dispatch, TLS: tls}
	}
	r := &report{Commit: "abc", Latency: []pipelineFigures{
		spec(50, 240, 0.5, dispatchFeeder, false), spec(50, 250, 0.5, dispatchPreEnqueued, false), spec(50, 230, 0.6, dispatchFeeder, true),
		spec(200, 900, 0.4, dispatchFeeder, false), spec(200, 1000, 0.4, dispatchPreEnqueued, false),
	}}
	var out strings.Builder
	r.print(&out)
	lines := strings.Split(out.String(), "\n")
	row := func(prefix string, after int) string {
		for _, l := range lines[after:] {
			if strings.HasPrefix(strings.TrimSpace(l), prefix) {
				return strings.Join(strings.Fields(l), " ")
			}
		}
		return ""
	}
	dispatch := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "3. dispatch") })
	require.Positive(t, dispatch, out.String())
	require.Equal(t, "C=50, L=200ms 240 250 0.96 0.500 0.500", row("C=50, L=200ms", dispatch+1))
	require.Equal(t, "C=200, L=200ms 900 1000 0.90 0.400 0.400", row("C=200, L=200ms", dispatch+1))
	tls := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "3. TLS") })
	require.Positive(t, tls, out.String())
	require.True(t, strings.HasPrefix(row("C=50, L=200ms", tls+1), "C=50, L=200ms 0.500 0.600 1.20 240 230"), row("C=50, L=200ms", tls+1))
	require.Empty(t, row("C=200", tls+1), "no TLS run at C=200")

	svg := latencyChart(r)
	require.Contains(t, svg, "240 (0.96)")
	require.NotContains(t, svg, "250 (1.00)", "the pre-enqueued run is not drawn")
	require.NotContains(t, svg, "230 (0.92)", "the TLS run is not drawn")
}
