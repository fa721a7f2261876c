package main

import (
	"testing"
	"time"
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
