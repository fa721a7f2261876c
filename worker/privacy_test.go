package worker_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/liveness/fakeapi"
	"reverify/storage/objects"
	"reverify/tasks"
	"reverify/worker"
)

// TestFailingKeysNeverLeaveTheLedgerRow runs objects whose keys name
// people through every failure the fetch can meet — a missing object, S3
// answering 500 with the key in its error document, a dropped connection,
// a refused object — and then greps everything that is not the ledger's
// own key columns: the worker's logs (handler and server), the ledger's
// messages (verifications.message, api_calls.message: the dashboard's
// Failures table) and what Redis keeps of each task's error (asynqmon's
// error_message). None may spell a key; the logs name objects by key hash.
func TestFailingKeysNeverLeaveTheLedgerRow(t *testing.T) {
	t.Parallel()
	b := setup(t, fakeapi.Options{})
	ctx := context.Background()
	const bucket = "kyc-privacy"
	people := []string{"john-smith-1977", "mary-major-1990", "jane-roe-1980", "zoë-ångström"}
	keys := map[string]reverify.Status{
		"users/john-smith-1977/selfie.jpg": reverify.StatusNotFound,
		"users/mary-major-1990/broken.jpg": reverify.StatusFailed, // S3 answers 500
		"users/jane-roe-1980/hangup.jpg":   reverify.StatusFailed, // S3 drops the connection
		"users/zoë-ångström/denied+1.jpg":  reverify.StatusFailed, // S3 refuses the object
		"users/ok-1/selfie.jpg":            reverify.StatusScored,
	}
	b.s3.CreateBucket(t, bucket)
	b.s3.PutObject(t, bucket, "users/ok-1/selfie.jpg", fakeapi.GenerateJPEG(1, 80, 80))

	// S3 as the worker sees it: versitygw behind a proxy that fails some keys.
	target, err := url.Parse(b.s3.Endpoint)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/"+bucket+"/")
		s3Error := func(status int, code string) {
			w.WriteHeader(status)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>cannot serve %s</Message><Key>%s</Key><Resource>%s</Resource></Error>`,
				code, key, key, r.URL.String())
		}
		switch {
		case strings.HasSuffix(key, "broken.jpg"):
			s3Error(http.StatusInternalServerError, "InternalError")
		case strings.HasSuffix(key, "denied+1.jpg"):
			s3Error(http.StatusForbidden, "AccessDenied")
		case strings.HasSuffix(key, "hangup.jpg"):
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(front.Close)
	cfg := b.s3.Config()
	cfg.Endpoint = front.URL
	objs, err := objects.Open(ctx, cfg)
	require.NoError(t, err)

	b.objs = objs // the worker reads through the proxy

	run := b.newRun(t)
	src := func(ctx context.Context, fn func(tasks.Object) error) error {
		for k := range keys {
			if err := fn(tasks.Object{Bucket: bucket, Key: k, Size: -1}); err != nil {
				return err
			}
		}
		return nil
	}
	b.enqueue(t, run, src, tasks.Retries(2))

	var logs lockedBuffer
	stop := b.startWorker(t, apiKey, worker.Config{
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	b.waitForStatus(t, run.ID, reverify.RunCompleted, 60*time.Second)
	stop()

	for k, want := range keys {
		r, err := b.store.ResultOf(ctx, run.ID, reverify.ObjectRef{Bucket: bucket, Key: k})
		require.NoError(t, err)
		require.Equal(t, want, r.Status, "%s: %s", k, r.Message)
	}

	// What a person, a dashboard or asynqmon reads besides the key columns.
	var texts []string
	rows, err := b.db.Query(ctx, `
		SELECT coalesce(message, '') FROM verifications WHERE run_id = $1
		UNION ALL SELECT coalesce(message, '') FROM api_calls WHERE run_id = $1`, run.ID)
	require.NoError(t, err)
	for rows.Next() {
		var m string
		require.NoError(t, rows.Scan(&m))
		texts = append(texts, "ledger message: "+m)
	}
	require.NoError(t, rows.Err())
	failures, err := b.store.Failures(ctx, run.ID, 100)
	require.NoError(t, err)
	for _, f := range failures {
		texts = append(texts, "dashboard failure: "+f.Message)
	}
	insp := asynq.NewInspector(b.redis)
	t.Cleanup(func() { insp.Close() })
	var taskErrs int
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
		insp.ListArchivedTasks, insp.ListRetryTasks, insp.ListCompletedTasks, insp.ListPendingTasks,
	} {
		infos, err := list(b.queue)
		require.NoError(t, err)
		for _, ti := range infos {
			if ti.LastErr != "" {
				taskErrs++
			}
			texts = append(texts, "asynq error_message: "+ti.LastErr)
		}
	}
	require.NotZero(t, taskErrs, "failed tasks keep their error in Redis")
	logText := logs.String()
	texts = append(texts, strings.Split(logText, "\n")...)

	for _, text := range texts {
		for _, who := range people {
			for _, form := range []string{who, url.PathEscape(who), url.QueryEscape(who), fmt.Sprintf("%q", who)} {
				require.NotContains(t, text, strings.Trim(form, `"`), "a key leaked")
			}
		}
	}
	for k, status := range keys {
		if status == reverify.StatusFailed {
			require.Contains(t, logText, objects.KeyHash(bucket, k), "the logs name %s by its hash", k)
		}
	}
}

// lockedBuffer is a log sink safe for concurrent handlers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
