package liveness

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// readWith drains r through a buffer of size n.
func readWith(t *testing.T, r io.Reader, n int) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, n)
	for range 10_000_000 {
		c, err := r.Read(buf)
		out = append(out, buf[:c]...)
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
	}
	t.Fatal("reader never reached EOF")
	return nil
}

func TestBodyReaderMatchesJSONMarshal(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 2, 3, 4, 5, 6, 7, 1000, 100_003} {
		img := make([]byte, size)
		for i := range img {
			img[i] = byte(rng.Uint32())
		}
		want, err := json.Marshal(struct {
			FaceImage string `json:"faceImage"`
		}{base64.StdEncoding.EncodeToString(img)})
		require.NoError(t, err)
		// json's own []byte encoding must agree too.
		wantBytes, err := json.Marshal(struct {
			FaceImage []byte `json:"faceImage"`
		}{img})
		require.NoError(t, err)
		require.Equal(t, want, wantBytes)
		require.Equal(t, int64(len(want)), bodyLen(size), "size %d", size)

		for _, bufSize := range []int{1, 2, 3, 4, 5, 7, 16, 17, 4096, 32 << 10} {
			got := readWith(t, newBodyReader(img), bufSize)
			require.Equal(t, string(want), string(got), "size %d, buffer %d", size, bufSize)
		}
		got, err := io.ReadAll(newBodyReader(img))
		require.NoError(t, err)
		require.Equal(t, string(want), string(got), "size %d, io.ReadAll", size)
	}
}

func TestBodyReaderRandomReads(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 60 {
		size, reads := rng.IntN(5000), 300
		if i%3 == 0 { // the sizes the transport reads: whole SIMD blocks and their tails
			size, reads = rng.IntN(200<<10), 40<<10
		}
		img := make([]byte, size)
		for i := range img {
			img[i] = byte(rng.Uint32())
		}
		want := `{"faceImage":"` + base64.StdEncoding.EncodeToString(img) + `"}`
		r := newBodyReader(img)
		var got []byte
		for {
			buf := make([]byte, rng.IntN(reads)) // includes zero-length reads
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
		}
		require.Equal(t, want, string(got))
		n, err := r.Read(make([]byte, 10))
		require.Equal(t, 0, n)
		require.Equal(t, io.EOF, err)
	}
}

func TestNewRequestBody(t *testing.T) {
	t.Parallel()
	c, err := New("http://127.0.0.1:1/base/", "k", nil)
	require.NoError(t, err)
	img := []byte("some image bytes \x00\xff")
	req, err := c.newRequest(t.Context(), img)
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:1/base/liveness", req.URL.String())
	want := `{"faceImage":"` + base64.StdEncoding.EncodeToString(img) + `"}`
	require.Equal(t, int64(len(want)), req.ContentLength)
	first, err := io.ReadAll(req.Body)
	require.NoError(t, err)
	require.Equal(t, want, string(first))
	for range 2 {
		body, err := req.GetBody()
		require.NoError(t, err)
		again, err := io.ReadAll(body)
		require.NoError(t, err)
		require.Equal(t, want, string(again))
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 7 ", 7 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{"99999999999999999", maxRetryAfter},
		{now.Add(30 * time.Second).Format(http1123), 30 * time.Second},
		{now.Add(-30 * time.Second).Format(http1123), 0},
		{"Wed, 25 Nov 2026 12:00:10 GMT", 10 * time.Second},
	} {
		require.Equal(t, tc.want, parseRetryAfter(tc.in, now), "Retry-After %q", tc.in)
	}
}

const http1123 = "Mon, 02 Jan 2006 15:04:05 GMT"

func TestTruncate(t *testing.T) {
	t.Parallel()
	require.Equal(t, "abc", truncate("abc", 3))
	require.Equal(t, "ab…", truncate("abcd", 2))
	require.Equal(t, "a…", truncate("aé", 2)) // é is two bytes: do not split it
}
