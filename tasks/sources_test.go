package tasks_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify/tasks"
)

func collect(t *testing.T, src tasks.Source) []string {
	t.Helper()
	var keys []string
	require.NoError(t, src(context.Background(), func(o tasks.Object) error {
		keys = append(keys, o.Key)
		return nil
	}))
	return keys
}

func TestFilters(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	after, before := day, day.Add(24*time.Hour)
	objs := []tasks.Object{
		{Key: "old.jpg", Size: 100, LastModified: day.Add(-time.Hour)},
		{Key: "in.jpg", Size: 100, LastModified: day.Add(time.Hour)},
		{Key: "IN2.JPG", Size: 5000, LastModified: day.Add(2 * time.Hour)},
		{Key: "tiny.jpg", Size: 1, LastModified: day.Add(time.Hour)},
		{Key: "new.jpg", Size: 100, LastModified: before.Add(time.Hour)},
		{Key: "note.txt", Size: 100, LastModified: day.Add(time.Hour)},
		{Key: "manifest.jpg", Size: -1},
	}
	tests := []struct {
		name string
		f    tasks.Filters
		want []string
	}{
		{"none", tasks.Filters{}, []string{"old.jpg", "in.jpg", "IN2.JPG", "tiny.jpg", "new.jpg", "note.txt", "manifest.jpg"}},
		{"window", tasks.Filters{ModifiedAfter: &after, ModifiedBefore: &before},
			[]string{"in.jpg", "IN2.JPG", "tiny.jpg", "note.txt", "manifest.jpg"}},
		{"size", tasks.Filters{MinSize: 10, MaxSize: 1000}, []string{"old.jpg", "in.jpg", "new.jpg", "note.txt", "manifest.jpg"}},
		{"all", tasks.Filters{Suffixes: []string{".jpg"}, ModifiedAfter: &after, ModifiedBefore: &before, MinSize: 10, MaxSize: 1000},
			[]string{"in.jpg", "manifest.jpg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, tt.f.Validate())
			keep := tt.f.Keep()
			var got []string
			for _, o := range objs {
				if keep == nil || keep(o) {
					got = append(got, o.Key)
				}
			}
			require.Equal(t, tt.want, got)
		})
	}
	require.Error(t, tasks.Filters{MinSize: 10, MaxSize: 5}.Validate())
	require.Error(t, tasks.Filters{ModifiedAfter: &before, ModifiedBefore: &after}.Validate())
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, err := w.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return b.Bytes()
}

func TestInventorySource(t *testing.T) {
	t.Parallel()
	manifest := `{"sourceBucket":"kyc","destinationBucket":"arn:aws:s3:::inv","fileFormat":"CSV",
		"fileSchema":"Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate",
		"files":[{"key":"data/1.csv.gz"},{"key":"data/2.csv.gz"}]}`
	files := map[string][]byte{
		"inv/data/1.csv.gz": gz(t, `"kyc","selfies/Zo%C3%AB+1.jpg","v1","true","false","120","2026-11-24T10:00:00.000Z"
"kyc","selfies/old.jpg","v0","false","false","120","2026-01-01T10:00:00.000Z"
"kyc","selfies/gone.jpg","v2","true","true","","2026-11-24T10:00:00.000Z"
`),
		"inv/data/2.csv.gz": gz(t, `"kyc","selfies/a%2Bb.jpg","","true","false","99","2026-11-24T11:00:00.000Z"
"kyc","bad%zz","","true","false","1","2026-11-24T11:00:00.000Z"
`),
	}
	open := func(_ context.Context, bucket, key string) (io.ReadCloser, error) {
		b, ok := files[bucket+"/"+key]
		if !ok {
			return nil, errors.New("no such key")
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	m, err := tasks.ParseInventoryManifest(strings.NewReader(manifest))
	require.NoError(t, err)
	var bad []tasks.BadLine
	var got []tasks.Object
	require.NoError(t, tasks.InventorySource(m, open, func(b tasks.BadLine) { bad = append(bad, b) })(context.Background(),
		func(o tasks.Object) error { got = append(got, o); return nil }))
	require.Len(t, got, 2)
	require.Equal(t, "selfies/Zoë 1.jpg", got[0].Key)
	require.Equal(t, "v1", got[0].Version)
	require.EqualValues(t, 120, got[0].Size)
	require.Equal(t, time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), got[0].LastModified)
	require.Equal(t, "selfies/a+b.jpg", got[1].Key)
	require.Len(t, bad, 1)

	_, err = tasks.ParseInventoryManifest(strings.NewReader(`{"fileFormat":"ORC","fileSchema":"x","files":[{"key":"a"}]}`))
	require.ErrorIs(t, err, tasks.ErrInventory)
}
