package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"reverify/internal/testenv"
	"reverify/liveness/fakeapi"
)

// TestChaos runs a fleet of worker processes over a few thousand objects
// while it breaks things: workers are SIGKILLed and restarted, Redis is
// restarted empty, PostgreSQL is restarted, and the API answers with 429s,
// 5xx, malformed JSON, slow answers and a window of 401s. At the end every
// object must have exactly one terminal row with the right status, and
// every paid call must be on record.
//
// REVERIFY_CHAOS_OBJECTS sets the size (default 1200; `make chaos` uses more).
// It owns its Redis and PostgreSQL server processes, so restarting them
// disturbs no other test.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test is long")
	}
	objects := 1200
	if v := os.Getenv("REVERIFY_CHAOS_OBJECTS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "REVERIFY_CHAOS_OBJECTS")
		objects = n
	}
	const (
		workers     = 3
		concurrency = 16
		rate        = 120 // the adaptive rate's ceiling
		maxInFlight = 24
		apiKey      = "chaos-key"
	)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := buildReverify(t, dir)
	redisSrv := startRedis(t, dir)
	pg := startPostgres(t, dir)
	s3srv := testenv.S3(t)

	apiAddr := testenv.FreePortT(t).Addr()
	api := startProcess(t, dir, "fake-api", bin, nil, "fake-api", "--addr", apiAddr, "--api-key", apiKey,
		"--latency", "15ms", "--error-rate", "0.04", "--rate-limit-rate", "0.04", "--retry-after", "1s",
		"--malformed-rate", "0.02", "--slow-rate", "0.02", "--slow-latency", "1500ms", "--seed", "11")
	defer func() { _ = api.Stop(syscall.SIGTERM, stopGrace) }()
	fake := fakeControl{base: "http://" + apiAddr}
	waitReady(t, api, func(context.Context) error { _, err := fake.stats(); return err })

	// Seed the bucket: mostly good faces, some bad input of every kind.
	const bucket = "chaos"
	s3srv.CreateBucket(t, bucket)
	want := seedChaos(t, ctx, s3srv, bucket, objects)

	dsn := pg.url("reverify")
	env := []string{
		"REVERIFY_DATABASE_URL=" + dsn,
		"REVERIFY_REDIS_URL=redis://" + redisSrv.addr + "/0",
		"REVERIFY_S3_ENDPOINT=" + s3srv.Endpoint,
		"REVERIFY_S3_REGION=" + s3srv.Region,
		"REVERIFY_S3_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + s3srv.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s3srv.SecretKey,
		"REVERIFY_API_URL=http://" + apiAddr,
		"REVERIFY_API_KEY=" + apiKey,
		"REVERIFY_API_TIMEOUT=3s",
		"REVERIFY_LOG_FORMAT=json",
	}
	runCLI(t, dir, bin, env, "migrate")
	queue := "chaos"
	runID := strings.TrimSpace(runCLI(t, dir, bin, env, "enqueue", "--bucket", bucket, "--prefix", "p/", "--queue", queue))
	// Objects deleted between listing and fetch.
	for key, status := range want {
		if status == "not_found" {
			_, err := s3srv.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			require.NoError(t, err)
		}
	}

	workerArgs := []string{"worker", "--queues", queue, "--concurrency", strconv.Itoa(concurrency),
		"--api-rate", strconv.Itoa(rate), "--api-rate-mode", "adaptive", "--api-max-in-flight", strconv.Itoa(maxInFlight),
		"--auth-cooldown", "2s", "--outage-cooldown", "2s", "--refill-every", "3s",
		"--retry-base", "200ms", "--retry-cap", "2s", "--shutdown-timeout", "5s"}
	fleet := make([]*testenv.Process, workers)
	for i := range fleet {
		fleet[i] = startProcess(t, dir, fmt.Sprintf("worker-%d", i), bin, env, workerArgs...)
	}

	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	progress := func() (done int, status string, err error) {
		err = pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM verifications WHERE run_id = $1 AND status <> 'pending'),
			(SELECT status FROM runs WHERE id = $1)`, runID).Scan(&done, &status)
		return done, status, err
	}

	// The chaos schedule, driven by progress so it happens at any speed.
	type event struct {
		at   float64
		name string
		do   func()
	}
	rng := rand.New(rand.NewPCG(7, 7))
	kills := 0
	kill := func() {
		i := rng.IntN(workers)
		require.NoError(t, fleet[i].Stop(syscall.SIGKILL, stopGrace))
		kills++
		fleet[i] = startProcess(t, dir, fmt.Sprintf("worker-%d-%d", i, kills), bin, env, workerArgs...)
	}
	events := []event{
		{0.05, "SIGKILL a worker", kill},
		{0.15, "SIGKILL a worker", kill},
		{0.25, "restart Redis, losing every queued task", redisSrv.restart},
		{0.35, "SIGKILL a worker", kill},
		{0.45, "401 window", func() {
			require.NoError(t, fake.setKey("rotated-away"))
			time.Sleep(2 * time.Second)
			require.NoError(t, fake.setKey(apiKey))
		}},
		{0.55, "restart PostgreSQL", pg.restart},
		{0.70, "SIGKILL a worker", kill},
		{0.85, "SIGKILL a worker", kill},
	}
	start := time.Now()
	var status string
	for status != "completed" {
		require.NoError(t, ctx.Err(), "run did not complete; worker logs are in %s", dir)
		done, st, err := progress()
		if err != nil { // PostgreSQL may be restarting
			time.Sleep(100 * time.Millisecond)
			continue
		}
		status = st
		for len(events) > 0 && float64(done) >= events[0].at*float64(objects) {
			t.Logf("%5.1fs  %4d/%d done: %s", time.Since(start).Seconds(), done, objects, events[0].name)
			events[0].do()
			events = events[1:]
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	require.Empty(t, events, "every chaos event happened")
	for _, w := range fleet {
		require.NoError(t, w.Stop(syscall.SIGTERM, stopGrace), "a worker exits cleanly on SIGTERM")
	}

	// Exactly one terminal row per object, with the right status.
	rows, err := pool.Query(ctx, `SELECT object_key, status FROM verifications WHERE run_id = $1`, runID)
	require.NoError(t, err)
	got := map[string]string{}
	for rows.Next() {
		var k, s string
		require.NoError(t, rows.Scan(&k, &s))
		got[k] = s
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, len(want))
	wrong := 0
	for k, w := range want {
		if got[k] != w {
			wrong++
			t.Errorf("%s: status %q, want %q", k, got[k], w)
		}
	}
	require.Zero(t, wrong)

	// Every paid call is on record.
	ledger, err := fake.ledger()
	require.NoError(t, err)
	stats, err := fake.stats()
	require.NoError(t, err)
	var charged, unknown, analysed, unreadable, unreadableNoTx int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE outcome = 'in_flight'),
		       count(*) FILTER (WHERE outcome IN ('scored', 'rejected')),
		       count(*) FILTER (WHERE outcome = 'transient' AND http_status = 200),
		       count(*) FILTER (WHERE outcome = 'transient' AND http_status = 200 AND transaction_id IS NULL)
		FROM api_calls WHERE run_id = $1`, runID).Scan(&unknown, &analysed, &unreadable, &unreadableNoTx))
	recorded := map[string]bool{}
	txRows, err := pool.Query(ctx, `SELECT transaction_id FROM api_calls WHERE run_id = $1 AND transaction_id IS NOT NULL`, runID)
	require.NoError(t, err)
	for txRows.Next() {
		var tx string
		require.NoError(t, txRows.Scan(&tx))
		recorded[tx] = true
	}
	require.NoError(t, txRows.Err())
	issued := map[string]bool{}
	perImage := map[string]int{}
	missingTx := 0
	for _, c := range ledger {
		if c.TransactionID != "" {
			issued[c.TransactionID] = true
			if !recorded[c.TransactionID] {
				missingTx++
			}
		}
		if c.Charged {
			charged++
			if c.ImageSHA256 != "" {
				perImage[c.ImageSHA256]++
			}
		}
	}
	for tx := range recorded {
		require.True(t, issued[tx], "recorded transaction %s was issued by the API", tx)
	}
	repeats := 0
	for _, n := range perImage {
		repeats += n - 1
	}
	// A transaction ID missing from api_calls can only belong to a call whose
	// worker died after sending it (on record as in_flight), or to an answer
	// cut off before its transactionId (on record as an unreadable 200).
	require.LessOrEqual(t, missingTx, unknown+unreadableNoTx, "unrecorded transaction IDs are explained")
	require.LessOrEqual(t, charged-analysed-unreadable, unknown)
	require.GreaterOrEqual(t, charged, analysed+unreadable)
	// The same image analysed twice only when the first answer was lost with its worker.
	require.LessOrEqual(t, repeats, unknown, "repeat calls only where a process died between the call and its record")
	require.LessOrEqual(t, stats.MaxInFlight, maxInFlight, "fleet concurrency cap at the API")
	require.LessOrEqual(t, stats.MaxPerSecond, rate+rate/20+2, "fleet rate at the API")

	// Copies (the same bytes as another object) made no call of their
	// own and carry their owner's transaction.
	var copies, copiesWithCalls, copiesOtherTx int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(*),
		       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM api_calls c WHERE c.run_id = v.run_id
		           AND c.bucket = v.bucket AND c.object_key = v.object_key)),
		       count(*) FILTER (WHERE o.transaction_id IS DISTINCT FROM v.transaction_id)
		FROM verifications v JOIN verifications o ON o.run_id = v.duplicate_of_run
		     AND reverify_key_hash(o.bucket, o.object_key) = v.duplicate_of
		WHERE v.run_id = $1 AND v.duplicate_of IS NOT NULL`, runID).Scan(&copies, &copiesWithCalls, &copiesOtherTx))
	require.Positive(t, copies, "the corpus has copies")
	require.Zero(t, copiesWithCalls, "a copy makes no call")
	require.Zero(t, copiesOtherTx, "a copy carries its owner's transaction")

	// The counters the triggers kept through it all agree with the rows.
	var mismatched int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(*) FROM (
			SELECT status, count(*) AS n FROM verifications WHERE run_id = $1 GROUP BY status
		) rows FULL JOIN (
			SELECT status, sum(objects) AS n FROM run_counts WHERE run_id = $1 GROUP BY status HAVING sum(objects) <> 0
		) counters USING (status)
		WHERE rows.n IS DISTINCT FROM counters.n`, runID).Scan(&mismatched))
	require.Zero(t, mismatched, "run_counts equals count(*) by status")
	var calls, counted int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM api_calls WHERE run_id = $1),
		(SELECT coalesce(sum(calls), 0) FROM run_calls WHERE run_id = $1)`, runID).Scan(&calls, &counted))
	require.Equal(t, calls, counted, "run_calls equals count(*) of api_calls")

	t.Logf("chaos: %d objects in %s (%.0f/s) through %d workers; %d SIGKILLs, Redis and PostgreSQL restarted once",
		objects, elapsed.Round(time.Millisecond), float64(objects)/elapsed.Seconds(), workers, kills)
	t.Logf("chaos: %d API calls answered, %d paid; %.3f paid calls per image", len(ledger), charged, float64(charged)/float64(objects))
	t.Logf("chaos: %d repeat analyses of one image, %d calls with unknown outcome (cut off by SIGKILL), %d paid answers unreadable (malformed)",
		repeats, unknown, unreadable)
	t.Logf("chaos: at the API: peak %d in flight (cap %d), peak %d calls in one second (rate %d/s)",
		stats.MaxInFlight, maxInFlight, stats.MaxPerSecond, rate)
}

// seedChaos puts n objects under p/ and returns each key's expected status.
func seedChaos(t *testing.T, ctx context.Context, srv testenv.S3Server, bucket string, n int) map[string]string {
	t.Helper()
	want := make(map[string]string, n)
	type obj struct {
		key  string
		body []byte
	}
	objs := make([]obj, 0, n)
	for i := range n {
		var o obj
		switch i % 50 {
		case 0:
			o = obj{fmt.Sprintf("p/tiny-%05d.jpg", i), fakeapi.GenerateJPEG(int64(i), 32, 32)}
			want[o.key] = "rejected"
		case 1:
			o = obj{fmt.Sprintf("p/empty-%05d.jpg", i), nil}
			want[o.key] = "invalid_image"
		case 2:
			o = obj{fmt.Sprintf("p/note-%05d.txt", i), []byte("not a face")}
			want[o.key] = "invalid_image"
		case 3:
			o = obj{fmt.Sprintf("p/gone-%05d.jpg", i), fakeapi.GenerateJPEG(int64(i), 64, 64)}
			want[o.key] = "not_found"
		case 5, 6: // the bytes of face i-1 (i-2) under another key, listed next to it: paid once
			o = obj{fmt.Sprintf("p/face-%05d-copy.jpg", i), objs[len(objs)-1].body}
			want[o.key] = "scored"
		case 7: // the bytes of tiny i-7: rejected, with its transaction
			o = obj{fmt.Sprintf("p/tiny-%05d-copy.jpg", i), objs[len(objs)-7].body}
			want[o.key] = "rejected"
		default:
			o = obj{fmt.Sprintf("p/face-%05d.jpg", i), fakeapi.GenerateJPEG(int64(i), 64+i%40, 64+i%30)}
			want[o.key] = "scored"
		}
		objs = append(objs, o)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, o := range objs {
		g.Go(func() error {
			_, err := srv.Client.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.key),
				Body: bytes.NewReader(o.body), ContentLength: aws.Int64(int64(len(o.body)))})
			return err
		})
	}
	require.NoError(t, g.Wait())
	return want
}

func buildReverify(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "reverify")
	cmd := exec.Command("go", "build", "-o", bin, "reverify/cmd/reverify")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

func runCLI(t *testing.T, dir, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "reverify %v: %s", args, stderr.String())
	return string(out)
}

// stopGrace is how long a stopped process has to exit before SIGKILL.
const stopGrace = 30 * time.Second

// startProcess starts bin for the test, its output in dir/name.log; it is
// killed when the test ends.
func startProcess(t *testing.T, dir, name, bin string, env []string, args ...string) *testenv.Process {
	t.Helper()
	return testenv.StartT(t, testenv.Command{Name: name, Bin: bin, Args: args, Env: env, Log: filepath.Join(dir, name+".log")})
}

// waitReady waits until ready answers, failing t if p exits first.
func waitReady(t *testing.T, p *testenv.Process, ready func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, p.WaitReady(ctx, ready))
}

// redisServer is a private redis-server that keeps nothing on disk.
type redisServer struct {
	t    *testing.T
	dir  string
	port testenv.Port
	addr string
	proc *testenv.Process
}

func startRedis(t *testing.T, dir string) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		missing(t, "redis-server is not installed")
	}
	port := testenv.FreePortT(t)
	r := &redisServer{t: t, dir: dir, port: port, addr: port.Addr()}
	r.start()
	return r
}

func (r *redisServer) start() {
	r.proc = startProcess(r.t, r.dir, "redis-"+strconv.FormatInt(time.Now().UnixNano(), 36), "redis-server", nil,
		"--bind", "127.0.0.1", "--port", r.port.String(), "--save", "", "--appendonly", "no")
	waitReady(r.t, r.proc, testenv.TCPReady(r.addr))
}

// restart kills Redis and starts it empty, as a restart without
// persistence (or a failover to an empty replica) does.
func (r *redisServer) restart() {
	require.NoError(r.t, r.proc.Stop(syscall.SIGKILL, stopGrace))
	r.start()
}

// pgCluster is a private PostgreSQL cluster.
type pgCluster struct {
	t       *testing.T
	bin     string
	data    string
	sockDir string
	port    string
}

func startPostgres(t *testing.T, dir string) *pgCluster {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		missing(t, "PostgreSQL server binaries (initdb) are not installed")
	}
	// Not under t.TempDir: the postgres user must be able to reach it.
	pgDir, err := os.MkdirTemp("", "reverify-chaos-pg-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(pgDir) })
	c := &pgCluster{t: t, bin: filepath.Dir(matches[len(matches)-1]), data: filepath.Join(pgDir, "data"), sockDir: pgDir,
		port: testenv.FreePortT(t).String()}
	if os.Geteuid() == 0 { // initdb refuses to run as root
		u, err := user.Lookup("postgres")
		require.NoError(t, err, "running as root needs the postgres user for initdb")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		require.NoError(t, os.Chown(pgDir, uid, gid))
	}
	c.run("initdb", "-D", c.data, "-A", "trust", "-U", "postgres", "--no-sync")
	c.ctl("start")
	t.Cleanup(func() { c.run("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop") })
	_ = dir
	return c
}

func (c *pgCluster) run(tool string, args ...string) {
	c.t.Helper()
	name, argv := filepath.Join(c.bin, tool), args
	if os.Geteuid() == 0 {
		name, argv = "runuser", append([]string{"-u", "postgres", "--", filepath.Join(c.bin, tool)}, args...)
	}
	out, err := exec.Command(name, argv...).CombinedOutput()
	require.NoError(c.t, err, "%s: %s", tool, out)
}

func (c *pgCluster) ctl(action string, extra ...string) {
	c.t.Helper()
	opts := fmt.Sprintf("-p %s -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300", c.port, c.sockDir)
	args := append([]string{"-D", c.data, "-o", opts, "-l", filepath.Join(c.sockDir, "log"), "-w"}, extra...)
	c.run("pg_ctl", append(args, action)...)
}

// restart stops PostgreSQL as a crash would and starts it again.
func (c *pgCluster) restart() { c.ctl("restart", "-m", "immediate") }

func (c *pgCluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%s/%s?sslmode=disable", c.port, db)
}

// missing fails in CI and skips elsewhere.
func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// fakeControl reads the fake API's own ledger over its control surface.
type fakeControl struct{ base string }

func (f fakeControl) get(path string, v any) error {
	resp, err := http.Get(f.base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (f fakeControl) stats() (fakeapi.Stats, error) {
	var s fakeapi.Stats
	return s, f.get("/_fake/stats", &s)
}

func (f fakeControl) ledger() ([]fakeapi.Call, error) {
	var l []fakeapi.Call
	return l, f.get("/_fake/ledger", &l)
}

func (f fakeControl) setKey(key string) error {
	body, _ := json.Marshal(map[string]string{"apiKey": key})
	resp, err := http.Post(f.base+"/_fake/options", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /_fake/options: %s", resp.Status)
	}
	return nil
}
