package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// report is everything one run of the harness measured.
type report struct {
	Time     time.Time         `json:"time"`
	Commit   string            `json:"commit"`
	Machine  map[string]string `json:"machine"`
	Repeat   int               `json:"repeat"`
	Options  []string          `json:"options,omitempty"`
	Enqueue  []enqueueFigures  `json:"enqueue,omitempty"`
	Pipeline []pipelineFigures `json:"pipeline,omitempty"`
	Profile  []share           `json:"worker_cpu_profile_100k,omitempty"`
	Latency  []pipelineFigures `json:"latency_bound,omitempty"`
	// LatencyProfile is the worker's CPU at the highest case 3 level.
	LatencyProfile []share           `json:"worker_cpu_profile_latency,omitempty"`
	Memory         []pipelineFigures `json:"memory,omitempty"`
	Ledger         []ledgerFigures   `json:"ledger,omitempty"`
	Scale          *scaleFigures     `json:"scale,omitempty"`
	APILimit       *apiLimitFigures  `json:"api_limit,omitempty"`
	Dedupe         *dedupeFigures    `json:"dedupe,omitempty"`
	Fairness       *fairnessFigures  `json:"fairness,omitempty"`
	Schedule       *scheduleFigures  `json:"schedule,omitempty"`
}

func newReport(ctx context.Context, o options) *report {
	commit, _ := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output()
	host, _ := os.Hostname()
	return &report{
		Time:   time.Now().UTC(),
		Commit: strings.TrimSpace(string(commit)),
		Repeat: o.repeat,
		Machine: map[string]string{
			"host": host, "cpus": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version(),
			"cpu_model": cpuModel(), "os": runtime.GOOS + "/" + runtime.GOARCH,
		},
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (r *report) write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("results dir: %w", err)
	}
	path := filepath.Join(dir, "bench-"+r.Time.Format("20060102T150405Z")+".json")
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode figures: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write figures: %w", err)
	}
	return path, nil
}

func (r *report) print(out io.Writer) {
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', tabwriter.AlignRight)
	defer w.Flush()
	fmt.Fprintf(w, "\nreverify bench %s on %s (%s CPUs, %s), median of %d\n", r.Commit, r.Machine["cpu_model"], r.Machine["cpus"], r.Machine["go"], max(r.Repeat, 1))
	if len(r.Enqueue) > 0 {
		fmt.Fprintln(w, "\n1. enqueue\tkeys\tseconds\tkeys/s\t× asynq loop\t× bare listing\tpeak RSS MB\tRedis B/task\tworker window\tRedis B/task, window\t")
		var base, listing float64
		for _, f := range r.Enqueue {
			vsListing := "-"
			switch {
			case strings.HasPrefix(f.Case, "asynq loop ") && !strings.Contains(f.Case, "pipelined"):
				base = f.KeysPerSec
			case strings.HasPrefix(f.Case, "bare S3 listing"):
				listing = f.KeysPerSec
			case strings.HasPrefix(f.Case, "S3 listing"):
				vsListing = ratio(f.KeysPerSec, listing)
			}
			win, winKB := "-", "-"
			if f.WindowTasks > 0 {
				win, winKB = fmt.Sprint(f.WindowTasks), fmt.Sprintf("%.0f", float64(f.WindowRedisBytes)/float64(f.WindowTasks))
			}
			fmt.Fprintf(w, "%s\t%d\t%.1f\t%.0f\t%s\t%s\t%.1f\t%.0f\t%s\t%s\t\n", f.Case, f.Keys, f.Seconds, f.KeysPerSec, ratio(f.KeysPerSec, base),
				vsListing, f.PeakRSSMB, f.RedisPerTask, win, winKB)
		}
	}
	if len(r.Pipeline) > 0 {
		fmt.Fprintln(w, "\n2. pipeline, API at 0 ms\timages/s\t× no-op\tCPU ms/image\t× no-op\tcores\tpeak RSS MB\tfake API ms/image\tS3 ms/image\tPostgreSQL ms/image\tRedis ms/image\tRedis commands/image\t")
		var base pipelineFigures
		for _, f := range r.Pipeline {
			if f.ImageKB == 0 {
				base = f
			}
			fmt.Fprintf(w, "%s\t%.0f\t%s\t%.3f\t%s\t%.2f\t%.1f\t%.3f\t%.3f\t%.3f\t%.3f\t%.1f\t\n", f.Case, f.ImagesPerSec, ratio(f.ImagesPerSec, base.ImagesPerSec),
				f.CPUMsPerImage, ratio(f.CPUMsPerImage, base.CPUMsPerImage), f.CPUCores, f.PeakRSSMB, f.FakeAPICPUMs, f.S3CPUMs,
				f.PostgresCPUMs, f.RedisCPUMs, f.RedisCommands)
		}
	}
	printVariants(w, "2", r.Pipeline)
	if len(r.Profile) > 0 {
		fmt.Fprintln(w, "\n   worker CPU, 100 KB (pprof)\tshare\t")
		for _, s := range r.Profile {
			fmt.Fprintf(w, "%s\t%.1f%%\t\n", s.Name, s.Percent)
		}
	}
	if len(r.Latency) > 0 {
		fmt.Fprintln(w, "\n3. latency-bound\tC÷L\timages/s\t× C÷L\tCPU ms/image\tcores\tmachine busy\tpeak RSS MB\ttask ms (C÷rate)\tAPI call ms\thandler ms outside the call\t")
		for _, f := range r.Latency {
			fmt.Fprintf(w, "%s\t%.0f\t%.0f\t%.3f\t%.3f\t%.2f\t%.0f%%\t%.1f\t%.0f\t%.0f\t%.0f\t\n", f.Case, f.LittleRate, f.ImagesPerSec, f.Efficiency,
				f.CPUMsPerImage, f.CPUCores, 100*f.MachineBusy, f.PeakRSSMB, f.TaskMS, f.APICallMS, f.NotAPICallMS)
		}
		// What an image cost each process, and so how fast this machine
		// could go at all: a level whose C÷L is past the machine's ceiling
		// is bounded by the machine, not by the pipeline.
		fmt.Fprintln(w, "\n   CPU ms per image\tworker\tPostgreSQL\tRedis\tS3 server\tfake API\tmachine\tmachine ceiling ÷ C÷L\tworker alone ÷ C÷L\tRedis commands per image\t")
		for _, f := range r.Latency {
			if f.MachineCPUMs == 0 {
				continue
			}
			fmt.Fprintf(w, "%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%s\t%s\t%.1f\t\n", f.Case, f.CPUMsPerImage, f.PostgresCPUMs, f.RedisCPUMs,
				f.S3CPUMs, f.FakeAPICPUMs, f.MachineCPUMs, ratio(f.MachineCeiling, f.LittleRate), ratio(f.WorkerCeiling, f.LittleRate), f.RedisCommands)
		}
	}
	printVariants(w, "3", r.Latency)
	if len(r.LatencyProfile) > 0 {
		last := ""
		for _, f := range r.Latency {
			if f.Dispatch != dispatchPreEnqueued && !f.TLS && f.LittleRate > 0 && !strings.Contains(f.Case, "wait-only") {
				last = f.Case
			}
		}
		fmt.Fprintf(w, "\n   worker CPU, %s (pprof)\tshare\t\n", last)
		for _, s := range r.LatencyProfile {
			fmt.Fprintf(w, "%s\t%.1f%%\t\n", s.Name, s.Percent)
		}
	}
	if len(r.Memory) > 0 {
		fmt.Fprintln(w, "\n4. worker memory\tidle RSS MB\tpeak RSS MB\tMB per in-flight\t(peak−idle) per in-flight\timages/s\t× C÷L\t")
		for _, f := range r.Memory {
			c := float64(f.Concurrency)
			fmt.Fprintf(w, "%s\t%.1f\t%.1f\t%.2f\t%.2f\t%.0f\t%.3f\t\n", f.Case, f.IdleRSSMB, f.PeakRSSMB, f.PeakRSSMB/c, (f.PeakRSSMB-f.IdleRSSMB)/c, f.ImagesPerSec, f.Efficiency)
		}
	}
	if len(r.Ledger) > 0 {
		need := r.neededRate()
		fmt.Fprintf(w, "\n5. ledger writes\trows\tpool\trows/s\t× alone\twrites per commit\tPostgreSQL CPU ms/row\t× needed (%.0f/s)\t\n", need)
		var alone float64
		for _, f := range r.Ledger {
			vsAlone := "-"
			switch {
			case f.WritesPerCommit > 0:
				vsAlone = ratio(f.RowsPerSec, alone)
			case f.Writers > 1:
				alone = f.RowsPerSec
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%.0f\t%s\t%.1f\t%.3f\t%s\t\n", f.Case, f.Rows, f.PoolConns, f.RowsPerSec, vsAlone,
				f.WritesPerCommit, f.PostgresCPUMs, ratio(f.RowsPerSec, need))
		}
	}
	if r.Fairness != nil {
		r.Fairness.print(w)
	}
	if r.Scale != nil {
		r.Scale.print(w)
	}
}

// printVariants prints, for a case's worker specs, the feeder against the
// same spec pre-enqueued and the worker's CPU over TLS against plain HTTP,
// when the run measured them.
func printVariants(w io.Writer, n string, rows []pipelineFigures) {
	var feeder, pre, tls []pipelineFigures
	for _, f := range rows {
		switch {
		case f.Dispatch == dispatchPreEnqueued:
			pre = append(pre, f)
		case f.TLS:
			tls = append(tls, f)
		case f.Dispatch == dispatchFeeder:
			feeder = append(feeder, f)
		}
	}
	same := func(a, b pipelineFigures) bool {
		return a.Images == b.Images && a.ImageKB == b.ImageKB && a.Concurrency == b.Concurrency && a.LatencyMS == b.LatencyMS
	}
	if len(pre) > 0 {
		fmt.Fprintf(w, "\n%s. dispatch\tfeeder images/s\tpre-enqueued images/s\tfeeder ÷ pre-enqueued (≥ 0.95)\tfeeder CPU ms/image\tpre-enqueued CPU ms/image\t\n", n)
		for _, f := range feeder {
			for _, b := range pre {
				if same(f, b) {
					fmt.Fprintf(w, "%s\t%.0f\t%.0f\t%s\t%.3f\t%.3f\t\n", f.Case, f.ImagesPerSec, b.ImagesPerSec, ratio(f.ImagesPerSec, b.ImagesPerSec),
						f.CPUMsPerImage, b.CPUMsPerImage)
				}
			}
		}
	}
	if len(tls) > 0 {
		fmt.Fprintf(w, "\n%s. TLS (S3 and API over HTTPS)\tworker CPU ms/image, plain\tTLS\t× plain\timages/s, plain\tTLS\tS3 server ms/image, plain\tTLS\tfake API ms/image, plain\tTLS\t\n", n)
		for _, f := range feeder {
			for _, t := range tls {
				if same(f, t) {
					fmt.Fprintf(w, "%s\t%.3f\t%.3f\t%s\t%.0f\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", f.Case, f.CPUMsPerImage, t.CPUMsPerImage,
						ratio(t.CPUMsPerImage, f.CPUMsPerImage), f.ImagesPerSec, t.ImagesPerSec, f.S3CPUMs, t.S3CPUMs, f.FakeAPICPUMs, t.FakeAPICPUMs)
				}
			}
		}
	}
}

// neededRate is the fastest result rate the other cases asked of the
// ledger: the largest C÷L, or the fastest pipeline.
func (r *report) neededRate() float64 {
	need := 0.0
	for _, f := range r.Latency {
		need = max(need, f.LittleRate)
	}
	for _, f := range r.Pipeline {
		if f.ImageKB > 0 {
			need = max(need, f.ImagesPerSec)
		}
	}
	return need
}

func ratio(v, base float64) string {
	if base == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v/base)
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("copy profile: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return fmt.Errorf("copy profile: %w", err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		return fmt.Errorf("copy profile: %w", err)
	}
	return nil
}
