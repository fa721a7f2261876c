package tasks

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// TestManifestSkipsKeysThatAreNotUTF8: S3 keys are UTF-8, and PostgreSQL
// refuses anything else (SQLSTATE 22021) for the whole batch it arrives
// in: a line that is not is reported with its number and skipped, like any
// other bad line, and so is a line over the limit.
func TestManifestSkipsKeysThatAreNotUTF8(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 2<<20)
	tests := []struct {
		name   string
		text   string
		format ManifestFormat
		want   []string
		badAt  []int
	}{
		{"lines", "a.jpg\nusers/\xff\xfe.jpg\nb.jpg\n", ManifestLines, []string{"a.jpg", "b.jpg"}, []int{2}},
		{"csv", "kyc,a.jpg\nkyc,users/\xc3(.jpg\nkyc,b.jpg,\xff\nkyc,c.jpg\n", ManifestCSV, []string{"a.jpg", "c.jpg"}, []int{2, 3}},
		{"lines over the limit", "a.jpg\n" + long + "\nb.jpg\n", ManifestLines, []string{"a.jpg", "b.jpg"}, []int{2}},
		{"csv over the limit", "kyc,a.jpg\nkyc," + long + "\nkyc,b.jpg\n", ManifestCSV, []string{"a.jpg", "b.jpg"}, []int{2}},
		{"csv quoted over lines", "kyc,\"x\ny.jpg\"\nkyc,b.jpg\n", ManifestCSV, []string{"x\ny.jpg", "b.jpg"}, nil},
		{"csv quote left open", "kyc,a.jpg\nkyc,\"open\n", ManifestCSV, []string{"a.jpg"}, []int{2}},
		{"csv bare quote", "kyc,a\"b.jpg\nkyc,c.jpg\n", ManifestCSV, []string{"c.jpg"}, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			objs, bad, err := readManifest(t, tt.text, tt.format, "kyc")
			require.NoError(t, err, "a bad line never ends the manifest")
			var keys []string
			for _, o := range objs {
				keys = append(keys, o.Key)
			}
			require.Equal(t, tt.want, keys)
			var lines []int
			for _, b := range bad {
				lines = append(lines, b.Line)
				require.NotEmpty(t, b.Reason)
			}
			require.Equal(t, tt.badAt, lines)
		})
	}
}

func TestInventorySkipsRowsThatAreNotUTF8(t *testing.T) {
	t.Parallel()
	data := `"kyc","a.jpg","","true","false","1"` + "\n" +
		`"kyc","users%2F%FF%FE.jpg","","true","false","1"` + "\n" +
		`"kyc","b.jpg","v%FF","true","false","1"` + "\n" +
		"\"kyc\",\"c.jpg\",\"\xff\",\"true\",\"false\",\"1\"\n" +
		"\"k\xffyc\",\"d.jpg\",\"\",\"true\",\"false\",\"1\"\n" +
		`"kyc","` + strings.Repeat("x", 1<<20) + `","","true","false","1"` + "\n" +
		`"kyc","e.jpg","","true","false","1"` + "\n"
	objs, bad, err := readInventory(t, []byte(data), false)
	require.NoError(t, err)
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	require.Equal(t, []string{"a.jpg", "b.jpg", "e.jpg"}, keys)
	require.Equal(t, "v%FF", objs[1].Version, "version IDs are not URL-encoded")
	var lines []int
	for _, b := range bad {
		lines = append(lines, b.Line)
	}
	require.Equal(t, []int{2, 4, 5, 6}, lines)
}

// TestInventoryRefusesAGzipBomb: a data file that decompresses past the
// limit ends the inventory with ErrInventoryTooLarge.
func TestInventoryRefusesAGzipBomb(t *testing.T) {
	t.Parallel()
	var zipped bytes.Buffer
	zw, err := gzip.NewWriterLevel(&zipped, gzip.BestSpeed)
	require.NoError(t, err)
	row := `"kyc","a.jpg","","true","false","1"` + "\n"
	_, err = io.Copy(zw, &repeatReader{b: []byte(row), left: 8 << 20})
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	_, _, err = readInventory(t, zipped.Bytes(), true, WithMaxFileBytes(1<<20))
	require.ErrorIs(t, err, ErrInventoryTooLarge)
	require.ErrorIs(t, err, ErrInventory)
}

// TestHostileInputKeepsMemoryFlat reads a 50 MB line (no line break) as
// each kind of source, and as a gzipped inventory file: what is allocated
// does not grow with the line. Not parallel: it reads the heap counters.
func TestHostileInputKeepsMemoryFlat(t *testing.T) {
	const size = 50 << 20
	const bound = 4 << 20
	measure := func(name string, read func() error) {
		t.Helper()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		require.NoError(t, read(), name)
		runtime.ReadMemStats(&after)
		require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(bound), "%s: allocated %d MB for a %d MB line",
			name, (after.TotalAlloc-before.TotalAlloc)>>20, size>>20)
	}
	for _, format := range []ManifestFormat{ManifestLines, ManifestCSV, ManifestAuto} {
		measure(string(format), func() error {
			r := io.MultiReader(strings.NewReader("kyc,a.jpg\n"), &repeatReader{b: []byte("x"), left: size})
			return ManifestSource(r, format, "kyc", nil)(context.Background(), func(Object) error { return nil })
		})
	}

	var zipped bytes.Buffer
	zw, err := gzip.NewWriterLevel(&zipped, gzip.BestSpeed)
	require.NoError(t, err)
	_, err = io.Copy(zw, &repeatReader{b: []byte(`"kyc","`), left: size})
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	measure("inventory", func() error {
		_, _, err := readInventory(t, zipped.Bytes(), true)
		return err
	})
}

// FuzzInventorySource feeds arbitrary data files (repeated to at least
// 256 KiB, with a 256-byte line limit): every object it yields is one S3
// and the ledger can hold, and what it allocates is bounded by the lines
// it reads, never by the length of one.
func FuzzInventorySource(f *testing.F) {
	f.Add([]byte(`"kyc","a.jpg","v1","true","false","1"` + "\n"))
	f.Add([]byte(`"kyc","users%2F%FF.jpg","","true","false","1"` + "\n"))
	f.Add([]byte(`"kyc","x` + strings.Repeat("y", 300) + `"`))
	f.Add([]byte("\"kyc\",\"a\nb\",\"\",\"true\"\n\"open"))
	f.Add([]byte("kyc,\xff\xfe,,true,false,1\n"))
	const maxLen = 256
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		total := max(len(data), 256<<10)
		lines := (bytes.Count(data, []byte("\n")) + 1) * (total/len(data) + 1)
		m := InventoryManifest{DestinationBucket: "inv", FileFormat: "CSV",
			FileSchema: "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size", Files: []struct {
				Key string `json:"key"`
			}{{Key: "data/1.csv"}}}
		open := func(context.Context, string, string) (io.ReadCloser, error) {
			return io.NopCloser(&repeatReader{b: data, left: total}), nil
		}
		var n int
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := InventorySource(m, open, nil, func(l *inventoryLimits) { l.maxLine = maxLen })(context.Background(), func(o Object) error {
			n++
			if !utf8.ValidString(o.Key) || o.Key == "" || len(o.Key) > 1024 || strings.ContainsRune(o.Key, 0) ||
				!bucketName.MatchString(o.Bucket) || !utf8.ValidString(o.Version) {
				t.Fatalf("inventory yielded an unusable object %+v", o)
			}
			return nil
		})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("a data file's content ended the inventory: %v", err)
		}
		bound := uint64(1<<20 + lines*(8*maxLen+512))
		if got := after.TotalAlloc - before.TotalAlloc; got > bound {
			t.Fatalf("allocated %d bytes reading %d bytes in %d lines (bound %d)", got, total, lines, bound)
		}
	})
}

// repeatReader yields b over and over, left bytes in all.
type repeatReader struct {
	b    []byte
	left int
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if len(r.b) < 4<<10 { // copy in large pieces, not a byte at a time
		r.b = bytes.Repeat(r.b, (4<<10)/len(r.b)+1)
	}
	n := 0
	for n < len(p) && r.left > 0 {
		c := copy(p[n:min(len(p), n+r.left)], r.b[r.off:])
		r.off = (r.off + c) % len(r.b)
		n += c
		r.left -= c
	}
	return n, nil
}

func readInventory(t *testing.T, data []byte, gzipped bool, opts ...InventoryOption) ([]Object, []BadLine, error) {
	t.Helper()
	key := "data/1.csv"
	if gzipped {
		key += ".gz"
	}
	m := InventoryManifest{DestinationBucket: "arn:aws:s3:::inv", FileFormat: "CSV",
		FileSchema: "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size", Files: []struct {
			Key string `json:"key"`
		}{{Key: key}}}
	open := func(_ context.Context, bucket, k string) (io.ReadCloser, error) {
		if bucket != "inv" || k != key {
			return nil, errors.New("no such key")
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	var objs []Object
	var bad []BadLine
	err := InventorySource(m, open, func(b BadLine) { bad = append(bad, b) }, opts...)(context.Background(), func(o Object) error {
		objs = append(objs, o)
		return nil
	})
	return objs, bad, err
}
