package objects_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/require"

	"reverify/internal/testenv"
	"reverify/storage/objects"
)

// countingAPI counts ListObjectsV2 calls to prove List pages.
type countingAPI struct {
	objects.API
	lists atomic.Int32
}

func (c *countingAPI) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	c.lists.Add(1)
	return c.API.ListObjectsV2(ctx, in, optFns...)
}

// putMany stores keys concurrently through the raw SDK.
func putMany(t *testing.T, client *s3.Client, bucket string, keys []string) {
	t.Helper()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan string)
	)
	for range 16 {
		wg.Go(func() {
			for key := range next {
				_, err := client.PutObject(context.Background(), &s3.PutObjectInput{
					Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(key),
				})
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, fmt.Errorf("put %s: %w", key, err))
					mu.Unlock()
				}
			}
		})
	}
	for _, k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
	require.NoError(t, firstErr)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func TestListManyPages(t *testing.T) {
	t.Parallel()
	srv := testenv.S3(t)
	srv.CreateBucket(t, "many")

	const n = 2500
	keys := make([]string, 0, n+3)
	for i := range n {
		keys = append(keys, fmt.Sprintf("selfies/%05d.jpg", i))
	}
	keys = append(keys, "other/1.jpg", "other/2.jpg", "selfie-not-in-prefix.jpg")
	putMany(t, srv.Client, "many", keys)
	srv.PutObject(t, "many", "selfies/folder/", nil) // directory marker

	api := &countingAPI{API: srv.Client}
	store := objects.New(api, objects.WithPageSize(100))

	seen := make(map[string]int, n)
	err := store.List(context.Background(), "many", "selfies/", func(o objects.Object) error {
		seen[o.Key]++
		require.Equal(t, "many", o.Bucket)
		require.Equal(t, int64(len(o.Key)), o.Size)
		require.NotEmpty(t, o.ETag)
		require.False(t, o.LastModified.IsZero())
		return nil
	})
	require.NoError(t, err)
	require.Len(t, seen, n)
	for i := range n {
		k := fmt.Sprintf("selfies/%05d.jpg", i)
		require.Equal(t, 1, seen[k], k)
	}
	require.GreaterOrEqual(t, api.lists.Load(), int32(n/100))

	t.Run("other prefix", func(t *testing.T) {
		var got []string
		require.NoError(t, store.List(context.Background(), "many", "other/", func(o objects.Object) error {
			got = append(got, o.Key)
			return nil
		}))
		require.Equal(t, []string{"other/1.jpg", "other/2.jpg"}, got)
	})

	t.Run("fn error stops", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := store.List(context.Background(), "many", "", func(objects.Object) error {
			calls++
			if calls == 150 {
				return stop
			}
			return nil
		})
		require.ErrorIs(t, err, stop)
		require.Equal(t, 150, calls)
	})

	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := store.List(ctx, "many", "", func(objects.Object) error { return nil })
		require.ErrorIs(t, err, context.Canceled)
		require.False(t, objects.IsRetryable(err))
	})
}

// getPaths are the two ways a Store fetches objects: through the SDK (AWS
// S3 itself) and by directly signed GETs (an explicit endpoint). Get's
// tests run against both.
func getPaths(t *testing.T, srv testenv.S3Server, opts ...objects.Option) map[string]*objects.Store {
	t.Helper()
	direct, err := objects.Open(context.Background(), srv.Config(), opts...)
	require.NoError(t, err)
	return map[string]*objects.Store{"sdk": objects.New(srv.Client, opts...), "direct": direct}
}

func TestKeysRoundTrip(t *testing.T) {
	t.Parallel()
	srv := testenv.S3(t)
	srv.CreateBucket(t, "keys")

	long := strings.Repeat("a", 200) + "/" + strings.Repeat("b", 200) + "/" +
		strings.Repeat("c", 200) + "/" + strings.Repeat("d", 200) + "/"
	long += strings.Repeat("e", 1024-len(long)-len(".jpg")) + ".jpg"
	require.Len(t, long, 1024)

	keys := []string{
		"selfies/Zoë Ångström/ü 1.jpg",
		"selfies/with space.jpg",
		"selfies/plus+sign.jpg",
		"selfies/percent%20not-escaped%.jpg",
		"selfies/amp&eq=q?.jpg",
		"selfies/日本語/写真.png",
		"selfies/" + long,
	}
	want := map[string][]byte{}
	for i, k := range keys {
		body := []byte(fmt.Sprintf("body %d of %q", i, k))
		want[k] = body
		_, err := srv.Client.PutObject(context.Background(), &s3.PutObjectInput{
			Bucket: aws.String("keys"), Key: aws.String(k), Body: bytes.NewReader(body),
		})
		require.NoError(t, err, k)
	}

	for name, store := range getPaths(t, srv, objects.WithPageSize(2)) {
		t.Run(name, func(t *testing.T) { roundTrip(t, store, keys, want) })
	}
}

func roundTrip(t *testing.T, store *objects.Store, keys []string, want map[string][]byte) {
	var listed []objects.Object
	require.NoError(t, store.List(context.Background(), "keys", "selfies/", func(o objects.Object) error {
		listed = append(listed, o)
		return nil
	}))
	require.Len(t, listed, len(keys))

	var buf bytes.Buffer
	for _, o := range listed {
		body, ok := want[o.Key]
		require.True(t, ok, "listed unknown key %q", o.Key)
		sum := md5.Sum(body)
		require.Equal(t, hex.EncodeToString(sum[:]), o.ETag, o.Key)

		got, err := store.Get(context.Background(), "keys", o.Key, "", 1<<20, &buf)
		require.NoError(t, err, o.Key)
		require.Equal(t, body, buf.Bytes(), o.Key)
		require.Equal(t, o.Key, got.Key)
		require.Equal(t, o.ETag, got.ETag)
		require.Equal(t, int64(len(body)), got.Size)

		head, err := store.Head(context.Background(), "keys", o.Key, "")
		require.NoError(t, err, o.Key)
		require.Equal(t, got.ETag, head.ETag)
		require.Equal(t, got.Size, head.Size)
	}
}

func TestGetErrorsAndLimits(t *testing.T) {
	t.Parallel()
	srv := testenv.S3(t)
	srv.CreateBucket(t, "bkt")
	srv.PutObject(t, "bkt", "exact.jpg", bytes.Repeat([]byte{'x'}, getLimit))
	srv.PutObject(t, "bkt", "over.jpg", bytes.Repeat([]byte{'y'}, getLimit+1))
	srv.PutObject(t, "bkt", "empty.jpg", nil)
	for name, store := range getPaths(t, srv) {
		t.Run(name, func(t *testing.T) {
			cfg := srv.Config()
			cfg.SecretKey = "wrong-secret"
			bad, err := objects.Open(context.Background(), cfg)
			require.NoError(t, err)
			if name == "sdk" {
				client, err := objects.NewClient(context.Background(), cfg)
				require.NoError(t, err)
				bad = objects.New(client)
			}
			getErrorsAndLimits(t, store, bad)
		})
	}
}

const getLimit = 1000

// getErrorsAndLimits checks store against the objects of TestGetErrorsAndLimits;
// bad is the same server with a wrong secret key.
func getErrorsAndLimits(t *testing.T, store, bad *objects.Store) {
	ctx := context.Background()
	var buf bytes.Buffer
	const limit = getLimit

	t.Run("exactly maxBytes", func(t *testing.T) {
		o, err := store.Get(ctx, "bkt", "exact.jpg", "", limit, &buf)
		require.NoError(t, err)
		require.Equal(t, int64(limit), o.Size)
		require.Equal(t, limit, buf.Len())
		sum := md5.Sum(buf.Bytes())
		require.Equal(t, hex.EncodeToString(sum[:]), o.ETag)
		require.NotContains(t, o.ETag, `"`)
	})

	t.Run("maxBytes+1", func(t *testing.T) {
		buf.WriteString("stale")
		o, err := store.Get(ctx, "bkt", "over.jpg", "", limit, &buf)
		require.ErrorIs(t, err, objects.ErrTooLarge)
		require.False(t, objects.IsRetryable(err))
		require.Zero(t, buf.Len())
		require.Equal(t, int64(limit+1), o.Size)
	})

	t.Run("empty", func(t *testing.T) {
		o, err := store.Get(ctx, "bkt", "empty.jpg", "", limit, &buf)
		require.NoError(t, err)
		require.Zero(t, o.Size)
		require.Zero(t, buf.Len())
	})

	t.Run("missing key", func(t *testing.T) {
		_, err := store.Get(ctx, "bkt", "nope.jpg", "", limit, &buf)
		require.ErrorIs(t, err, objects.ErrNotFound)
		require.NotErrorIs(t, err, objects.ErrBucketNotFound)
		require.False(t, objects.IsRetryable(err))
		require.Contains(t, err.Error(), "bkt key_hash="+objects.KeyHash("bkt", "nope.jpg"))
		require.NotContains(t, err.Error(), "nope.jpg")

		_, err = store.Head(ctx, "bkt", "nope.jpg", "")
		require.ErrorIs(t, err, objects.ErrNotFound)
	})

	t.Run("missing bucket", func(t *testing.T) {
		_, err := store.Get(ctx, "no-such-bucket", "a.jpg", "", limit, &buf)
		require.ErrorIs(t, err, objects.ErrNotFound)
		require.ErrorIs(t, err, objects.ErrBucketNotFound)
		require.False(t, objects.IsRetryable(err))

		err = store.CheckBucket(ctx, "no-such-bucket")
		require.ErrorIs(t, err, objects.ErrBucketNotFound)

		err = store.List(ctx, "no-such-bucket", "", func(objects.Object) error { return nil })
		require.ErrorIs(t, err, objects.ErrBucketNotFound)
	})

	t.Run("bucket exists", func(t *testing.T) {
		require.NoError(t, store.CheckBucket(ctx, "bkt"))
	})

	t.Run("wrong credentials", func(t *testing.T) {
		err := bad.CheckBucket(ctx, "bkt")
		require.ErrorIs(t, err, objects.ErrAccessDenied)
		_, err = bad.Get(ctx, "bkt", "exact.jpg", "", limit, &buf)
		require.ErrorIs(t, err, objects.ErrAccessDenied)
		require.False(t, objects.IsRetryable(err))
	})

	t.Run("invalid maxBytes", func(t *testing.T) {
		_, err := store.Get(ctx, "bkt", "exact.jpg", "", 0, &buf)
		require.Error(t, err)
	})
}

// memoryBucket starts a MemoryServer with one bucket, and an SDK client of it.
func memoryBucket(t *testing.T, bucket string) (*objects.MemoryServer, *s3.Client) {
	t.Helper()
	ms, err := objects.NewMemoryServer()
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, ms.Close()) })
	require.NoError(t, ms.CreateBucket(bucket))
	client, err := objects.NewClient(context.Background(), ms.Config())
	require.NoError(t, err)
	return ms, client
}

func TestMemoryServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ms, client := memoryBucket(t, "demo")

	keys := []string{"img/1.jpg", "img/2.jpg", "img/Zoë Ångström/ü 1.jpg", "img/a+b&c=d%e.jpg", "img/dir/", "zzz.jpg"}
	for _, k := range keys {
		body := []byte("body of " + k)
		if strings.HasSuffix(k, "/") {
			body = nil
		}
		_, err := client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String("demo"), Key: aws.String(k), Body: bytes.NewReader(body),
		})
		require.NoError(t, err, k)
	}

	store, err := objects.Open(ctx, ms.Config(), objects.WithPageSize(2))
	require.NoError(t, err)
	require.NoError(t, store.CheckBucket(ctx, "demo"))

	var got []string
	require.NoError(t, store.List(ctx, "demo", "img/", func(o objects.Object) error {
		got = append(got, o.Key)
		return nil
	}))
	require.ElementsMatch(t, []string{"img/1.jpg", "img/2.jpg", "img/Zoë Ångström/ü 1.jpg", "img/a+b&c=d%e.jpg"}, got)

	var buf bytes.Buffer
	for _, k := range got {
		o, err := store.Get(ctx, "demo", k, "", 1<<10, &buf)
		require.NoError(t, err, k)
		require.Equal(t, "body of "+k, buf.String())
		require.NotContains(t, o.ETag, `"`)
	}

	_, err = store.Get(ctx, "demo", "img/missing.jpg", "", 1<<10, &buf)
	require.ErrorIs(t, err, objects.ErrNotFound)
	_, err = store.Get(ctx, "demo", "img/1.jpg", "", 3, &buf)
	require.ErrorIs(t, err, objects.ErrTooLarge)
	require.ErrorIs(t, store.CheckBucket(ctx, "nope"), objects.ErrBucketNotFound)
}

// TestDirectGetRetriesTransient: the direct path tries a throttled or
// failing GET again, as the SDK's retryer does, and gives up after three
// attempts with a retryable error that names S3's code.
func TestDirectGetRetriesTransient(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	failFirst := atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKID/") {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if n <= failFirst.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>r1</RequestId></Error>`)
			return
		}
		w.Header().Set("ETag", `"abc"`)
		_, _ = io.WriteString(w, "image")
	}))
	t.Cleanup(srv.Close)
	store, err := objects.Open(context.Background(), objects.Config{Endpoint: srv.URL, PathStyle: true, AccessKey: "AKID", SecretKey: "secret"})
	require.NoError(t, err)
	var buf bytes.Buffer

	failFirst.Store(2)
	o, err := store.Get(context.Background(), "b", "k.jpg", "", 100, &buf)
	require.NoError(t, err)
	require.Equal(t, "image", buf.String())
	require.Equal(t, "abc", o.ETag)
	require.EqualValues(t, 3, calls.Load())

	calls.Store(0)
	failFirst.Store(100)
	_, err = store.Get(context.Background(), "b", "k.jpg", "", 100, &buf)
	require.True(t, objects.IsRetryable(err), "%v", err)
	require.ErrorContains(t, err, "SlowDown")
	require.EqualValues(t, 3, calls.Load())
}

// TestGetVersion fetches an older version of an object by its ID (as a
// manifest's version column asks) through both paths, and a version that
// does not exist is ErrNotFound.
func TestGetVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ms, client := memoryBucket(t, "ver")
	_, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("ver"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
	require.NoError(t, err)
	var versions []string
	for _, body := range []string{"first take", "second take"} {
		out, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("ver"), Key: aws.String("a b+c.jpg"), Body: strings.NewReader(body)})
		require.NoError(t, err)
		require.NotEmpty(t, aws.ToString(out.VersionId))
		versions = append(versions, aws.ToString(out.VersionId))
	}

	direct, err := objects.Open(ctx, ms.Config())
	require.NoError(t, err)
	for name, store := range map[string]*objects.Store{"sdk": objects.New(client), "direct": direct} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			o, err := store.Get(ctx, "ver", "a b+c.jpg", versions[0], 1<<10, &buf)
			require.NoError(t, err)
			require.Equal(t, "first take", buf.String())
			require.Equal(t, versions[0], o.VersionID)

			_, err = store.Get(ctx, "ver", "a b+c.jpg", "", 1<<10, &buf)
			require.NoError(t, err)
			require.Equal(t, "second take", buf.String())

			_, err = store.Get(ctx, "ver", "a b+c.jpg", "no-such-version", 1<<10, &buf)
			require.ErrorIs(t, err, objects.ErrNotFound)
		})
	}
}

// TestOpenSDKGet: Config.SDKGet sends GETs through the SDK (its user agent
// shows) instead of the direct path.
func TestOpenSDKGet(t *testing.T) {
	t.Parallel()
	agents := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agents <- r.Header.Get("User-Agent")
		_, _ = io.WriteString(w, "image")
	}))
	t.Cleanup(srv.Close)
	for _, sdk := range []bool{false, true} {
		store, err := objects.Open(context.Background(), objects.Config{Endpoint: srv.URL, PathStyle: true,
			AccessKey: "AKID", SecretKey: "secret", SDKGet: sdk})
		require.NoError(t, err)
		var buf bytes.Buffer
		_, err = store.Get(context.Background(), "b", "k.jpg", "", 100, &buf)
		require.NoError(t, err)
		require.Equal(t, "image", buf.String())
		require.Equal(t, sdk, strings.Contains(<-agents, "aws-sdk-go-v2"), "SDKGet=%v", sdk)
	}
}
