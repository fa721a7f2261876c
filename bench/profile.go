package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// profileCategory names where CPU time goes; a sample belongs to the first
// category (in list order) that any frame of its stack matches.
type profileCategory struct {
	name string
	re   *regexp.Regexp
}

// newCategories lists where the time can go, most specific first: base64
// inside the liveness client counts as base64, GC assists inside JSON as JSON.
func newCategories() []profileCategory {
	c := func(name, re string) profileCategory { return profileCategory{name, regexp.MustCompile(re)} }
	return []profileCategory{
		c("base64", `^encoding/base64\.`),
		c("JSON", `^encoding/json\.`),
		c("logging (slog)", `^log/slog\.`),
		c("PostgreSQL (pgx)", `jackc/(pgx|puddle)`),
		c("S3 client (objects, SDK)", `aws-sdk-go-v2|aws/smithy-go|reverify/storage/objects\.`),
		c("liveness client", `reverify/liveness\.`),
		c("HTTP transport (S3 + API)", `^net/http\.|^net\.|^crypto/tls\.`),
		c("asynq + Redis", `hibiken/asynq|redis/go-redis`),
		c("image check", `reverify/worker\.checkImage`),
		c("GC", `^runtime\.(gcBgMarkWorker|gcDrain|bgsweep|bgscavenge|markroot|gcAssist)`),
		c("syscalls", `^syscall\.|^internal/runtime/syscall|^internal/poll\.`),
		c("scheduler/runtime", `^runtime\.`),
	}
}

// profileBreakdown splits a CPU profile into categories, in percent of
// all samples, using `go tool pprof -traces`.
func profileBreakdown(ctx context.Context, path string) (map[string]float64, error) {
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-traces", path).Output()
	if err != nil {
		return nil, fmt.Errorf("pprof -traces: %w", err)
	}
	cats := newCategories()
	totals := map[string]float64{}
	var all float64
	var value float64
	var frames []string
	flush := func() {
		if value == 0 {
			return
		}
		name := categorise(cats, frames)
		totals[name] += value
		all += value
		value, frames = 0, frames[:0]
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----") {
			flush()
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if d, ok := parseDuration(fields[0]); ok && len(fields) >= 2 {
			flush()
			value = d
			frames = append(frames, fields[1])
			continue
		}
		if value > 0 {
			frames = append(frames, fields[0])
		}
	}
	flush()
	if all == 0 {
		return nil, fmt.Errorf("pprof: no samples in %s", path)
	}
	for k := range totals {
		totals[k] = 100 * totals[k] / all
	}
	return totals, nil
}

// categorise names the first category any frame of a stack matches.
func categorise(cats []profileCategory, frames []string) string {
	for _, c := range cats {
		for _, fr := range frames {
			if c.re.MatchString(fr) {
				return c.name
			}
		}
	}
	return "other"
}

func parseDuration(s string) (float64, bool) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, err := strconv.ParseFloat(s, 64)
		return n, err == nil && strings.ContainsAny(s, "0123456789")
	}
	return float64(d), true
}

// sortedShares lists categories by share, largest first.
func sortedShares(m map[string]float64) []share {
	out := make([]share, 0, len(m))
	for k, v := range m {
		out = append(out, share{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Percent > out[j].Percent })
	return out
}

type share struct {
	Name    string  `json:"name"`
	Percent float64 `json:"percent"`
}
