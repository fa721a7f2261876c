package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"reverify/internal/testenv"
	"reverify/liveness/fakeapi"
)

// dedupeOptions are the knobs of the dedupe case (issue 17, "each
// distinct image paid once").
type dedupeOptions struct {
	objects     int
	share       float64 // of objects whose bytes are another object's
	workers     int
	concurrency int
	latency     time.Duration
	imageKB     int
	rate        int // the fleet's fixed API rate: the vendor's quota, what a run waits for
}

func (d *dedupeOptions) register(fs *flag.FlagSet) {
	fs.IntVar(&d.objects, "dedupe-objects", 2000, "dedupe: objects in the corpus")
	fs.Float64Var(&d.share, "dedupe-share", 0.3, "dedupe: share of objects whose bytes duplicate another object's")
	fs.IntVar(&d.workers, "dedupe-workers", 2, "dedupe: worker processes")
	fs.IntVar(&d.concurrency, "dedupe-concurrency", 50, "dedupe: concurrency of each worker")
	fs.DurationVar(&d.latency, "dedupe-latency", 100*time.Millisecond, "dedupe: fake API latency")
	fs.IntVar(&d.imageKB, "dedupe-image-kb", 20, "dedupe: image size in KB")
	fs.IntVar(&d.rate, "dedupe-rate", 50, "dedupe: the fleet's fixed API rate, calls/s (a run at the vendor's quota; 0 = none)")
}

// dedupeRun is one run of the corpus through the fleet.
type dedupeRun struct {
	Mode      string  `json:"mode"`
	Seconds   float64 `json:"wall_seconds"` // enqueue to the last object's result
	PaidCalls int     `json:"paid_calls"`   // answers the fake API gave (200 and 400: what the vendor bills)
	APICalls  int64   `json:"api_calls"`    // the run's api_calls rows
	Done      int64   `json:"done"`
	Copies    int64   `json:"copies"` // rows with duplicate_of
}

// dedupeFigures is what the dedupe case measured.
type dedupeFigures struct {
	Objects  int       `json:"objects"`
	Distinct int       `json:"distinct_contents"`
	Dedupe   dedupeRun `json:"dedupe"`
	Keep     dedupeRun `json:"keep_duplicates"`
	// PaidPerDistinct is the dedupe run's paid calls ÷ distinct images
	// (target 1.000).
	PaidPerDistinct float64 `json:"paid_per_distinct"`
	// WallRatio is the dedupe run's wall time ÷ the keep-duplicates run's.
	WallRatio float64 `json:"wall_ratio"`
}

// dedupeCase runs a corpus where a share of objects repeat other objects'
// bytes through worker processes and the fake API twice, at a fixed API
// rate as a run at the vendor's quota is: deduplicated, and with
// --keep-duplicates (every object paid for), one after the other.
func (e *env) dedupeCase(ctx context.Context, o options) (*dedupeFigures, error) {
	d := o.dedupe
	keys, distinct, err := e.seedDuplicates("dedupe/", d.objects, d.share, d.imageKB<<10)
	if err != nil {
		return nil, err
	}
	logf("  seeded %d objects, %d distinct contents", len(keys), distinct)
	f := &dedupeFigures{Objects: len(keys), Distinct: distinct}
	if f.Dedupe, err = e.dedupeRun(ctx, d, keys, "dedupe"); err != nil {
		return nil, err
	}
	if f.Keep, err = e.dedupeRun(ctx, d, keys, "keep-duplicates", "REVERIFY_KEEP_DUPLICATES=true"); err != nil {
		return nil, err
	}
	f.PaidPerDistinct = float64(f.Dedupe.PaidCalls) / float64(max(distinct, 1))
	if f.Keep.Seconds > 0 {
		f.WallRatio = f.Dedupe.Seconds / f.Keep.Seconds
	}
	for _, r := range []dedupeRun{f.Dedupe, f.Keep} {
		logf("  %-16s %6d objects done, %6d paid calls, %6d copies, %6.1f s", r.Mode, r.Done, r.PaidCalls, r.Copies, r.Seconds)
	}
	logf("  paid calls ÷ distinct images: %.3f (target 1.000); wall time dedupe ÷ keep-duplicates: %.3f", f.PaidPerDistinct, f.WallRatio)
	return f, nil
}

// seedDuplicates writes n JPEG objects straight into versitygw's root, as
// seedImages does; a share of them repeat the bytes of one of the others,
// in a shuffled order so copies meet their owners in flight. It returns
// the keys and the number of distinct contents.
func (e *env) seedDuplicates(prefix string, n int, share float64, size int) ([]string, int, error) {
	head := fakeapi.GenerateJPEG(2, 96, 96)
	size = max(size, len(head)+8)
	body := func(i int) []byte { // distinct content i
		b := make([]byte, size)
		copy(b, head)
		rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), byte(i >> 16), 0xd0}).Read(b[len(head):])
		return b
	}
	distinct := n - int(float64(n)*share+0.5)
	rng := rand.New(rand.NewPCG(17, 17))
	contents := make([]int, n)
	for i := range contents {
		contents[i] = i
		if i >= distinct {
			contents[i] = rng.IntN(distinct)
		}
	}
	rng.Shuffle(n, func(i, j int) { contents[i], contents[j] = contents[j], contents[i] })
	keys := make([]string, n)
	for i, c := range contents {
		keys[i] = fmt.Sprintf("%s%03d/%06d.jpg", prefix, i/1000, i)
		path := filepath.Join(e.s3Root, "bench", filepath.FromSlash(keys[i]))
		if i%1000 == 0 {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return nil, 0, fmt.Errorf("seed %s: %w", keys[i], err)
			}
		}
		if err := os.WriteFile(path, body(c), 0o644); err != nil {
			return nil, 0, fmt.Errorf("seed %s: %w", keys[i], err)
		}
	}
	return keys, distinct, nil
}

// dedupeRun starts the fake API and the workers (with workerEnv), runs
// keys as one run to its end and counts what was paid for.
func (e *env) dedupeRun(ctx context.Context, d dedupeOptions, keys []string, mode string, workerEnv ...string) (dedupeRun, error) {
	r := dedupeRun{Mode: mode}
	if err := e.flushRedis(ctx); err != nil {
		return r, err
	}
	api, url, err := e.startFakeAPI(ctx, d.latency, false)
	if err != nil {
		return r, err
	}
	defer func() { _ = api.Terminate() }()
	queue := "bench-dup-" + mode + "-" + randomHex(4)
	for i := range d.workers {
		w, err := testenv.Start(testenv.Command{Name: fmt.Sprintf("worker %d", i+1), Bin: e.bin,
			Log:  filepath.Join(e.dir, fmt.Sprintf("dedupe-%s-worker-%d.log", mode, i+1)),
			Args: []string{"worker", "--concurrency", strconv.Itoa(d.concurrency), "--queues", queue},
			Env: append(append(e.procEnv(), "REVERIFY_API_URL="+url, "REVERIFY_API_RATE="+strconv.Itoa(d.rate)),
				workerEnv...)})
		if err != nil {
			return r, err
		}
		defer func() { _ = w.Terminate() }()
	}
	start := time.Now()
	runID, err := e.enqueueFor(ctx, pipelineSpec{kind: reverifyWorker, keys: keys}, queue)
	if err != nil {
		return r, err
	}
	for {
		done, err := e.runDone(ctx, runID)
		if err != nil {
			return r, err
		}
		if done >= len(keys) {
			break
		}
		if err := waitShort(ctx, 50*time.Millisecond); err != nil {
			return r, err
		}
	}
	r.Seconds = time.Since(start).Seconds()
	st, err := fakeStats(ctx, url)
	if err != nil {
		return r, err
	}
	r.PaidCalls = st.ByStatus[200] + st.ByStatus[400]
	p, err := e.store.Progress(ctx, runID)
	if err != nil {
		return r, err
	}
	r.APICalls, r.Done = p.APICalls, p.Done
	r.Copies, err = e.store.Copies(ctx, runID)
	return r, err
}
