package main

import (
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
