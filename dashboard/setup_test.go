package dashboard_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"reverify/dashboard"
	"reverify/internal/testenv"
	"reverify/liveness/fakeapi"
)

const (
	user     = "reviewer-ann"
	password = "correct horse battery staple"
	token    = "tok-0123456789abcdef"
)

type bundle struct {
	pool   *pgxpool.Pool
	srv    *httptest.Server
	runID  string
	bucket string
	low    string // key of a low score
}

func (b *bundle) basic() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// setup serves a dashboard over a migrated database holding one run with
// scored, rejected and failed objects whose images are in a versitygw bucket.
func setup(t *testing.T, cfg dashboard.Config) *bundle {
	t.Helper()
	return setupWith(t, cfg, nil)
}

// setupWith is setup with asynqmon (or any handler) under /monitoring.
func setupWith(t *testing.T, cfg dashboard.Config, monitor http.Handler) *bundle {
	t.Helper()
	ctx := context.Background()
	store, pool := testenv.LedgerWithPool(t)
	s3 := testenv.S3(t)

	b := &bundle{pool: pool, bucket: "kyc", low: "users/jane doe+1/selfie.jpg"}
	s3.CreateBucket(t, b.bucket)
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO runs (name, source, queue, status, total)
		VALUES ('nightly 2026-11-25', '{"kind":"prefix"}', 'liveness', 'running', 6) RETURNING id::text`).Scan(&b.runID))
	_, err := pool.Exec(ctx, `SELECT reverify_add_run_partitions($1::uuid)`, b.runID)
	require.NoError(t, err)
	rows := []struct {
		key    string
		status string
		score  any
		code   any
	}{
		{b.low, "scored", 12.5, nil},
		{"users/a.jpg", "scored", 91.0, nil},
		{"users/b.jpg", "scored", 97.25, nil},
		{"users/c.jpg", "rejected", nil, 1017},
		{"users/d.jpg", "failed", nil, nil},
		{"users/e.jpg", "pending", nil, nil},
	}
	for i, r := range rows {
		_, err := pool.Exec(ctx, `INSERT INTO verifications (run_id, bucket, object_key, status, liveness_score, error_code, message, completed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $4 = 'pending' THEN NULL ELSE now() END)`,
			b.runID, b.bucket, r.key, r.status, r.score, r.code, fmt.Sprintf("message %d", i))
		require.NoError(t, err)
		s3.PutObject(t, b.bucket, r.key, fakeapi.GenerateJPEG(int64(i), 96, 96))
	}
	s3.PutObject(t, b.bucket, "users/not-in-run.jpg", fakeapi.GenerateJPEG(99, 96, 96))

	if !cfg.Auth.Configured() {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		require.NoError(t, err)
		cfg.Auth = dashboard.Auth{User: user, PasswordHash: string(hash), Token: token, TokenName: cfg.Auth.TokenName}
	}
	probes := func(mux *http.ServeMux) {
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	}
	d, err := dashboard.New(store, dashboard.NewS3Images(s3.Client), monitor, probes, cfg)
	require.NoError(t, err)
	b.srv = httptest.NewServer(d)
	t.Cleanup(b.srv.Close)
	return b
}

// chromium returns Debian's chromium, failing in CI and skipping elsewhere
// when it is missing.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("REVERIFY_CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is missing (CI=true, a missing browser fails): run bash .ci/install")
	}
	t.Skip("chromium is missing; install it with: bash .ci/install (apt-get install chromium)")
	return ""
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
