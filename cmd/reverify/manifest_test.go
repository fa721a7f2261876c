package main

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/internal/testenv"
)

// TestEnqueueSkipsKeysThatAreNotUTF8: a manifest holding keys that are
// not UTF-8 (here: 64 KiB of random bytes after two good keys) enqueues
// the good keys, reports the others by line number, and neither sends the
// bad ones to PostgreSQL (which refuses the whole batch: SQLSTATE 22021)
// nor counts them as objects to send in a dry run.
func TestEnqueueSkipsKeysThatAreNotUTF8(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	common := []string{"--database-url", dsn, "--redis-url", "redis://" + testenv.RedisAddr(t) + "/0",
		"--s3-endpoint", "http://127.0.0.1:1", "--s3-path-style", "--log-format", "text"}
	_, stderr, code := cli(t, ctx, "", append([]string{"migrate"}, common...)...)
	require.Equal(t, 0, code, stderr)

	var junk strings.Builder
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 64 << 10 {
		if i%97 == 96 {
			junk.WriteByte('\n')
			continue
		}
		junk.WriteByte(byte(0x80 + rng.IntN(0x40))) // continuation bytes only: never UTF-8
	}
	manifest := "users/a.jpg\nusers/\xff\xfe.jpg\nusers/b.jpg\n" + junk.String()
	args := append([]string{"enqueue", "--bucket", "kyc", "--manifest", "-", "--manifest-format", "lines", "--queue", testenv.Queue(t)}, common...)

	out, stderr, code := cli(t, ctx, manifest, append(args, "--dry-run")...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "2 would be sent to the liveness API (at least 2 API calls, about 2 billable answers)")
	require.Contains(t, stderr, "manifest line 2 skipped: key is not valid UTF-8")

	out, stderr, code = cli(t, ctx, manifest, args...)
	require.Equal(t, 0, code, stderr)
	runID := strings.TrimSpace(out)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })
	var objects int
	var status reverify.RunStatus
	require.NoError(t, conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM verifications WHERE run_id = $1), status FROM runs WHERE id = $1`,
		runID).Scan(&objects, &status))
	require.Equal(t, 2, objects)
	require.Equal(t, reverify.RunRunning, status, "the enqueue finished")
}
