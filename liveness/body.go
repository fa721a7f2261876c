package liveness

import (
	"io"

	"github.com/segmentio/asm/base64" // AVX2/NEON; the same output as encoding/base64, faster (docs/performance.md)
)

// The request body is {"faceImage":"<base64>"}: standard base64 needs no
// JSON escaping, so the body is prefix + encoded image + suffix.
const (
	bodyPrefix = `{"faceImage":"`
	bodySuffix = `"}`
)

// bodyLen is the exact length of the request body for an image of n bytes.
func bodyLen(n int) int64 {
	return int64(len(bodyPrefix) + base64.StdEncoding.EncodedLen(n) + len(bodySuffix))
}

// bodyReader streams the request body for one image. It base64-encodes the
// image on the fly: whole 3-byte groups are encoded straight into the
// caller's buffer, and only a group that does not fit (a read of fewer than
// four bytes, or the padded tail) goes through a 4-byte scratch buffer. It
// starts no goroutine and never holds an encoded copy of the image.
type bodyReader struct {
	img     []byte // image bytes not yet encoded
	head    int    // bytes of bodyPrefix already written
	tail    int    // bytes of bodySuffix already written
	scratch [4]byte
	pending []byte // encoded bytes in scratch not yet written
}

func newBodyReader(img []byte) *bodyReader { return &bodyReader{img: img} }

// Read implements io.Reader.
func (r *bodyReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch {
		case r.head < len(bodyPrefix):
			c := copy(p[n:], bodyPrefix[r.head:])
			r.head += c
			n += c
		case len(r.pending) > 0:
			c := copy(p[n:], r.pending)
			r.pending = r.pending[c:]
			n += c
		case len(r.img) > 0:
			room := len(p) - n
			if room < 4 {
				// Encode one group into scratch and hand it out piecemeal.
				in := min(3, len(r.img))
				base64.StdEncoding.Encode(r.scratch[:], r.img[:in])
				r.img = r.img[in:]
				r.pending = r.scratch[:base64.StdEncoding.EncodedLen(in)]
				continue
			}
			in := min(room/4*3, len(r.img)) // whole groups, or the rest of the image
			base64.StdEncoding.Encode(p[n:], r.img[:in])
			r.img = r.img[in:]
			n += base64.StdEncoding.EncodedLen(in)
		case r.tail < len(bodySuffix):
			c := copy(p[n:], bodySuffix[r.tail:])
			r.tail += c
			n += c
		default:
			return n, io.EOF
		}
	}
	if r.tail == len(bodySuffix) {
		return n, io.EOF
	}
	return n, nil
}

// Close implements io.Closer so the reader can be a request body as is.
func (r *bodyReader) Close() error { return nil }
