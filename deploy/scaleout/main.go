// Command scaleout shows on one machine that throughput grows with worker
// processes: it runs the same job with 1, 2 and 4 `reverify worker`
// processes against `reverify fake-api --latency 200ms` and prints images
// per second for each, until the fleet-wide API rate (--api-rate) binds.
//
//	make scaleout                       # or: go run ./deploy/scaleout -h
//	make scaleout SCALEOUT_ARGS='-api-rate 120'
//
// It needs the local PostgreSQL and Redis (make services); S3 is an
// in-process server, and everything runs on 127.0.0.1.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"reverify/internal/testenv"
	"reverify/liveness/fakeapi"
	"reverify/storage/objects"
)

type options struct {
	workers     []int
	perWorker   int
	concurrency int
	latency     time.Duration
	apiRate     int
	redisURL    string
	adminURL    string
	timeout     time.Duration
}

func main() {
	var o options
	var workers string
	flag.StringVar(&workers, "workers", "1,2,4", "worker process counts to measure")
	flag.IntVar(&o.perWorker, "images", 300, "images per worker process in each step (the job grows with the fleet)")
	flag.IntVar(&o.concurrency, "concurrency", 10, "--concurrency of each worker")
	flag.DurationVar(&o.latency, "latency", 200*time.Millisecond, "fake API latency")
	flag.IntVar(&o.apiRate, "api-rate", 0, "fleet-wide --api-rate for the workers (0 = none)")
	flag.StringVar(&o.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis")
	flag.StringVar(&o.adminURL, "database-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL admin URL; a scratch database is created and dropped")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	for _, s := range strings.Split(workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "scaleout: invalid -workers %q\n", workers)
			os.Exit(2)
		}
		o.workers = append(o.workers, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	err := run(ctx, o, os.Stdout)
	cancel()
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "scaleout: %v\n", err)
		os.Exit(1)
	}
}

// env is what every step shares: the binary, S3, the fake API, a database.
type env struct {
	bin, dir, dbURL, apiURL string
	s3                      *objects.MemoryServer
	base                    []string // added to the environment of child processes
}

func run(ctx context.Context, o options, out io.Writer) error {
	dir, err := os.MkdirTemp("", "reverify-scaleout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e := &env{dir: dir, bin: filepath.Join(dir, "reverify")}
	fmt.Fprintln(out, "building reverify …")
	if b, err := exec.CommandContext(ctx, "go", "build", "-o", e.bin, "./cmd/reverify").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %w\n%s", err, b)
	}

	e.s3, err = objects.NewMemoryServer()
	if err != nil {
		return err
	}
	defer e.s3.Close()
	cfg := e.s3.Config()
	e.base = []string{
		"REVERIFY_S3_ENDPOINT=" + cfg.Endpoint, "REVERIFY_S3_REGION=" + cfg.Region, "REVERIFY_S3_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + cfg.AccessKey, "AWS_SECRET_ACCESS_KEY=" + cfg.SecretKey,
		"REVERIFY_REDIS_URL=" + o.redisURL, "REVERIFY_LOG_LEVEL=warn", "REVERIFY_LOG_FORMAT=text",
		// The key the fake API accepts and the workers send: by environment,
		// never on a command line (ps shows those to every user).
		"REVERIFY_API_KEY=scaleout-key",
	}

	dbName := "reverify_scaleout_" + randomHex(4)
	u, err := url.Parse(o.adminURL)
	if err != nil {
		return fmt.Errorf("-database-url: %w", err)
	}
	u.Path = "/" + dbName
	e.dbURL = u.String()
	e.base = append(e.base, "REVERIFY_DATABASE_URL="+e.dbURL)
	defer dropDatabase(o.adminURL, dbName)
	migrate := exec.CommandContext(ctx, e.bin, "migrate")
	migrate.Env = append(os.Environ(), e.base...)
	if b, err := migrate.CombinedOutput(); err != nil {
		return fmt.Errorf("migrate: %w\n%s", err, b)
	}

	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	e.apiURL = "http://" + port.Addr()
	api, err := testenv.Start(testenv.Command{Name: "fake api", Bin: e.bin, Env: e.base,
		Args: []string{"fake-api", "--addr", port.Addr(), "--latency", o.latency.String()}})
	if err != nil {
		return err
	}
	defer func() { _ = api.Terminate() }()
	if err := api.WaitReady(ctx, testenv.TCPReady(port.Addr())); err != nil {
		return err
	}

	fmt.Fprintf(out, "fake API latency %s, %d images per worker, --concurrency %d", o.latency, o.perWorker, o.concurrency)
	if o.apiRate > 0 {
		fmt.Fprintf(out, ", fleet-wide --api-rate %d/s", o.apiRate)
	}
	ideal := float64(o.concurrency) / o.latency.Seconds()
	fmt.Fprintf(out, "\none worker can do at most %.0f images/s (concurrency / latency)\n\n", ideal)
	fmt.Fprintf(out, "%8s %8s %10s %12s %10s\n", "workers", "images", "seconds", "images/s", "speed-up")
	var first float64
	for _, n := range o.workers {
		rate, images, secs, err := e.step(ctx, o, n)
		if err != nil {
			return fmt.Errorf("%d workers: %w", n, err)
		}
		if first == 0 {
			first = rate / float64(n)
		}
		fmt.Fprintf(out, "%8d %8d %10.2f %12.1f %9.2fx\n", n, images, secs, rate, rate/first)
	}
	return nil
}

// step enqueues n*perWorker images in a fresh queue, starts n workers and
// measures completions per second between the first and the last result.
func (e *env) step(ctx context.Context, o options, n int) (rate float64, images int, secs float64, err error) {
	images = n * o.perWorker
	bucket := fmt.Sprintf("scale-%d-%s", n, randomHex(3))
	if err := e.seed(ctx, bucket, images); err != nil {
		return 0, 0, 0, err
	}
	queue := "scaleout-" + randomHex(4)
	enq := exec.CommandContext(ctx, e.bin, "enqueue", "--bucket", bucket, "--queue", queue, "--name", fmt.Sprintf("scaleout %d workers", n))
	enq.Env = append(os.Environ(), e.base...)
	var stdout, stderr bytes.Buffer
	enq.Stdout, enq.Stderr = &stdout, &stderr
	if err := enq.Run(); err != nil {
		return 0, 0, 0, fmt.Errorf("enqueue: %w\n%s", err, stderr.String())
	}
	runID := lastLine(stdout.String())

	workerArgs := []string{"worker", "--queues", queue + "," + queue + "-high," + queue + "-low",
		"--concurrency", strconv.Itoa(o.concurrency), "--api-url", e.apiURL}
	if o.apiRate > 0 {
		workerArgs = append(workerArgs, "--api-rate", strconv.Itoa(o.apiRate))
	}
	var procs []*testenv.Process
	defer func() {
		for _, p := range procs {
			_ = p.Terminate()
		}
	}()
	for i := range n {
		w, err := testenv.Start(testenv.Command{Name: fmt.Sprintf("worker %d", i+1), Bin: e.bin, Args: workerArgs, Env: e.base,
			Output: os.Stderr})
		if err != nil {
			return 0, 0, 0, err
		}
		procs = append(procs, w)
	}

	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		return 0, 0, 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		var pending, scored int
		var span float64
		err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'scored'),
			coalesce(extract(epoch FROM max(completed_at) - min(completed_at)), 0)::float8
			FROM verifications WHERE run_id = $1::uuid`, runID).Scan(&pending, &scored, &span)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("progress of run %s: %w", runID, err)
		}
		if pending == 0 {
			if scored != images {
				return 0, 0, 0, fmt.Errorf("run %s: %d of %d images scored", runID, scored, images)
			}
			return float64(images-1) / max(span, 1e-3), images, span, nil
		}
		select {
		case <-ctx.Done():
			return 0, 0, 0, fmt.Errorf("run %s: %d images still pending: %w", runID, pending, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (e *env) seed(ctx context.Context, bucket string, n int) error {
	if err := e.s3.CreateBucket(bucket); err != nil {
		return err
	}
	client, err := objects.NewClient(ctx, e.s3.Config())
	if err != nil {
		return err
	}
	for i := range n {
		img := fakeapi.GenerateJPEG(int64(i), 80, 80)
		_, err := client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("img/%06d.jpg", i)),
			Body: bytes.NewReader(img), ContentLength: aws.Int64(int64(len(img))),
		})
		if err != nil {
			return fmt.Errorf("seed %s: %w", bucket, err)
		}
	}
	return nil
}

func dropDatabase(adminURL, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

func lastLine(s string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	return last
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
