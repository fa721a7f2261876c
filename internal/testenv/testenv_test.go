package testenv_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
)

func TestPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	var dbURL, name string
	t.Run("fresh database", func(t *testing.T) {
		dbURL = testenv.Postgres(t)
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		name = strings.TrimPrefix(u.Path, "/")
		require.True(t, strings.HasPrefix(name, "reverify_test_"), name)

		conn, err := pgx.Connect(ctx, dbURL)
		require.NoError(t, err)
		defer conn.Close(ctx)

		var current string
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&current))
		require.Equal(t, name, current)

		var tables int
		require.NoError(t, conn.QueryRow(ctx,
			"SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&tables))
		require.Zero(t, tables)

		// An open connection must not stop the cleanup from dropping it.
		_, err = conn.Exec(ctx, "CREATE TABLE t (id int)")
		require.NoError(t, err)
	})
	if name == "" {
		t.Skip("subtest did not get a database")
	}

	// The subtest's cleanup has run: its database is gone.
	admin, err := url.Parse(dbURL)
	require.NoError(t, err)
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	require.NoError(t, err)
	defer conn.Close(ctx)
	var exists bool
	require.NoError(t, conn.QueryRow(ctx,
		"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists))
	require.False(t, exists, "database %s still exists after cleanup", name)
}

func TestPostgresDistinctDatabases(t *testing.T) {
	t.Parallel()
	require.NotEqual(t, testenv.Postgres(t), testenv.Postgres(t))
}

func TestRedisAddr(t *testing.T) {
	t.Parallel()
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	defer c.Close()
	require.NoError(t, c.Ping(context.Background()).Err())
}

func TestQueueUnique(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		q := testenv.Queue(t)
		require.False(t, seen[q], "duplicate queue %s", q)
		seen[q] = true
		require.True(t, strings.HasPrefix(q, "t-testqueueunique-"), q)
	}
	t.Run("Odd Name/with spaces & ünïcode", func(t *testing.T) {
		q := testenv.Queue(t)
		require.Regexp(t, `^t-[a-z0-9-]+-[0-9a-f]{8}$`, q)
	})
}

func TestS3RoundTrip(t *testing.T) {
	t.Parallel()
	srv := testenv.S3(t)
	srv.CreateBucket(t, "images")
	body := []byte("not really a jpeg")
	srv.PutObject(t, "images", "a/b.jpg", body)

	out, err := srv.Client.GetObject(context.Background(), &s3.GetObjectInput{
		Bucket: aws.String("images"), Key: aws.String("a/b.jpg"),
	})
	require.NoError(t, err)
	defer out.Body.Close()
	got, err := io.ReadAll(out.Body)
	require.NoError(t, err)
	require.True(t, bytes.Equal(body, got))
}

func TestVersitygwPathEnv(t *testing.T) {
	t.Setenv("REVERIFY_VERSITYGW", "/nonexistent/versitygw")
	_, err := testenv.VersitygwPath()
	require.Error(t, err)
}

// TestVersitygwTLS: with TLS, versitygw serves HTTPS with WriteTLS's
// certificate; the returned client trusts it, a client that does not know
// the authority is refused.
func TestVersitygwTLS(t *testing.T) {
	t.Parallel()
	bin, err := testenv.VersitygwPath()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("versitygw: %v", err)
		}
		t.Skipf("versitygw: %v", err)
	}
	files, err := testenv.WriteTLS(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	v, err := testenv.StartVersitygw(ctx, testenv.Versitygw{Bin: bin, Access: "tlsaccess", Secret: "tlssecrettlssecret",
		Root: t.TempDir(), Log: filepath.Join(t.TempDir(), "versitygw.log"), KeepAlive: true, TLS: &files})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Terminate() })
	require.True(t, strings.HasPrefix(v.Config.Endpoint, "https://127.0.0.1:"), v.Config.Endpoint)

	_, err = v.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("images")})
	require.NoError(t, err)
	_, err = v.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("images"), Key: aws.String("k"),
		Body: strings.NewReader("x"), ContentLength: aws.Int64(1)})
	require.NoError(t, err)

	_, err = (&http.Client{Timeout: 5 * time.Second}).Get(v.Config.Endpoint)
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown)
}
