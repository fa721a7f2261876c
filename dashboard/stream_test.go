package dashboard_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/dashboard"
	"reverify/storage/postgres"
)

const streamRun = "0b9e8f3c-7f0e-4a57-9a6b-2a1d3c4e5f60"

// oneItemLedger knows one object; the image stream asks nothing else.
type oneItemLedger struct{ dashboard.Ledger }

func (oneItemLedger) Item(_ context.Context, runID string, obj reverify.ObjectRef) (postgres.ReviewItem, []postgres.Review, error) {
	return postgres.ReviewItem{RunID: runID, Bucket: obj.Bucket, Key: obj.Key, Status: reverify.StatusScored}, nil, nil
}

// Audit accepts the image view; what is recorded is tested with the real
// ledger (TestReviewsAndImages).
func (oneItemLedger) Audit(context.Context, reverify.Actor, reverify.AuditAction, string, *reverify.ObjectRef, map[string]any) error {
	return nil
}

// slowImages serves a JPEG whose bytes arrive a chunk at a time, as from a
// slow S3 or for a slow reader.
type slowImages struct {
	chunks int
	every  time.Duration
}

const chunkSize = 32 << 10

func (s slowImages) Open(context.Context, string, string, string) (io.ReadCloser, int64, error) {
	size := int64(s.chunks * chunkSize)
	return io.NopCloser(&slowReader{left: size, every: s.every}), size, nil
}

// slowReader yields left bytes (a JPEG's magic first), waiting every
// before each chunk after the first.
type slowReader struct {
	left, sent int64
	every      time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if r.sent > 0 && r.sent%chunkSize == 0 {
		time.Sleep(r.every)
	}
	n := min(int64(len(p)), r.left, chunkSize-r.sent%chunkSize)
	clear(p[:n])
	if r.sent == 0 {
		copy(p[:n], []byte{0xFF, 0xD8, 0xFF, 0xE0}) // a JPEG, as far as sniffing goes
	}
	r.left -= n
	r.sent += n
	return int(n), nil
}

// TestImageStreamOutlastsTheWriteTimeout: the server's write timeout
// bounds a whole response; an image that takes longer to stream is still
// delivered whole, because every chunk moves the deadline.
func TestImageStreamOutlastsTheWriteTimeout(t *testing.T) {
	t.Parallel()
	img := slowImages{chunks: 12, every: 100 * time.Millisecond} // over a second
	d, err := dashboard.New(oneItemLedger{}, img, nil, nil, dashboard.Config{})
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(d)
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)

	res, err := srv.Client().Get(srv.URL + "/runs/" + streamRun + "/image?o=" + plainRef("kyc", "users/a.jpg"))
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	n, err := io.Copy(io.Discard, res.Body)
	require.NoError(t, err, "the stream was cut")
	require.EqualValues(t, img.chunks*chunkSize, n)
}
