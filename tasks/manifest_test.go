package tasks

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func readManifest(t *testing.T, text string, format ManifestFormat, bucket string) ([]Object, []BadLine, error) {
	t.Helper()
	var objs []Object
	var bad []BadLine
	err := ManifestSource(strings.NewReader(text), format, bucket, func(b BadLine) { bad = append(bad, b) })(
		context.Background(), func(o Object) error {
			objs = append(objs, o)
			return nil
		})
	return objs, bad, err
}

func TestManifestSource(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		text    string
		format  ManifestFormat
		bucket  string
		want    []Object
		badAt   []int
		wantErr string
	}{
		{
			name: "csv with header and versions",
			text: "bucket,key\nkyc,a.jpg\nkyc,b c.jpg,v2\n",
			want: []Object{{Bucket: "kyc", Key: "a.jpg", Size: -1}, {Bucket: "kyc", Key: "b c.jpg", Version: "v2", Size: -1}},
		},
		{
			name: "csv with quoted key holding a comma",
			text: "kyc,\"x,y.jpg\"\r\nkyc,Zoë/ü+%&=.jpg\r\n",
			want: []Object{{Bucket: "kyc", Key: "x,y.jpg", Size: -1}, {Bucket: "kyc", Key: "Zoë/ü+%&=.jpg", Size: -1}},
		},
		{
			name:  "csv bad lines are reported and skipped",
			text:  "kyc,a.jpg\nkyc\nBAD BUCKET,k\nkyc,\nkyc,b.jpg,v,extra\nkyc,c.jpg\n",
			want:  []Object{{Bucket: "kyc", Key: "a.jpg", Size: -1}, {Bucket: "kyc", Key: "c.jpg", Size: -1}},
			badAt: []int{2, 3, 4, 5},
		},
		{
			name:   "one key per line keeps spaces and skips blanks",
			text:   "a.jpg\n\n dir/b c.jpg \r\nselfies/ü.png\n",
			bucket: "kyc",
			want: []Object{{Bucket: "kyc", Key: "a.jpg", Size: -1}, {Bucket: "kyc", Key: " dir/b c.jpg ", Size: -1},
				{Bucket: "kyc", Key: "selfies/ü.png", Size: -1}},
		},
		{
			name:   "lines forced even when they contain commas",
			text:   "kyc,a.jpg\n",
			format: ManifestLines,
			bucket: "other",
			want:   []Object{{Bucket: "other", Key: "kyc,a.jpg", Size: -1}},
		},
		{
			name:   "over-long key",
			text:   strings.Repeat("k", 1025) + "\nok.jpg\n",
			bucket: "kyc",
			want:   []Object{{Bucket: "kyc", Key: "ok.jpg", Size: -1}},
			badAt:  []int{1},
		},
		{name: "lines need a bucket", text: "a.jpg\n", wantErr: "needs --bucket"},
		{name: "unknown format", text: "a\n", format: "xml", wantErr: "unknown format"},
		{name: "empty manifest", text: "", bucket: "kyc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			objs, bad, err := readManifest(t, tt.text, tt.format, tt.bucket)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.ErrorIs(t, err, ErrManifest)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, objs)
			var lines []int
			for _, b := range bad {
				lines = append(lines, b.Line)
				require.NotEmpty(t, b.Reason)
			}
			require.Equal(t, tt.badAt, lines)
		})
	}
}

func FuzzManifestSource(f *testing.F) {
	f.Add("bucket,key\nkyc,a.jpg\n", "kyc")
	f.Add("a.jpg\n\nb.jpg", "kyc")
	f.Add("kyc,\"x\ny\",v\n\"unterminated", "")
	f.Add("users/\xff\xfe.jpg\nkyc,\xc3(,\xff\n", "kyc")
	f.Fuzz(func(t *testing.T, text, bucket string) {
		for _, format := range []ManifestFormat{ManifestAuto, ManifestCSV, ManifestLines} {
			objs, _, err := readManifest(t, text, format, bucket)
			if err != nil {
				continue
			}
			for _, o := range objs {
				if o.Key == "" || len(o.Key) > 1024 || o.Bucket == "" || strings.ContainsRune(o.Key, 0) ||
					!utf8.ValidString(o.Key) || !utf8.ValidString(o.Version) {
					t.Fatalf("manifest yielded an unusable object %+v", o)
				}
			}
		}
	})
}
