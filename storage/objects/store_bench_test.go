package objects_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"reverify/storage/objects"
)

// stubGet answers every GetObject with the same body, declaring its length.
type stubGet struct {
	objects.API
	body []byte
}

func (s stubGet) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return &s3.GetObjectOutput{
		Body:          io.NopCloser(bytes.NewReader(s.body)),
		ContentLength: aws.Int64(int64(len(s.body))),
		ETag:          aws.String(`"etag"`),
	}, nil
}

// BenchmarkGet reads a 200 KB object into a fresh buffer each time, as a
// worker does when its buffer pool is empty: B/op shows what one image
// costs in memory beyond its own bytes.
func BenchmarkGet(b *testing.B) {
	body := make([]byte, 200<<10)
	store := objects.New(stubGet{body: body})
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var buf bytes.Buffer
		if _, err := store.Get(ctx, "bucket", "key", "", 15<<20, &buf); err != nil {
			b.Fatal(err)
		}
	}
}
