package campaign

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func md5Hex(i int) string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	s := md5.Sum(b[:])
	return hex.EncodeToString(s[:])
}

// TestDistinctCounter: objects with the same plain-MD5 ETag and size
// count once; multipart, unknown or malformed ETags and unknown sizes
// count one each. Past the exact bound the HyperLogLog stays within 2%.
func TestDistinctCounter(t *testing.T) {
	t.Parallel()
	type obj struct {
		etag string
		size int64
	}
	for _, tt := range []struct {
		name string
		objs []obj
		want int64
	}{
		{"nothing", nil, 0},
		{"same bytes under three keys", []obj{{md5Hex(1), 10}, {md5Hex(1), 10}, {md5Hex(1), 10}}, 1},
		{"same MD5, other size", []obj{{md5Hex(1), 10}, {md5Hex(1), 11}}, 2},
		{"multipart ETags are no MD5", []obj{{md5Hex(1)[:30] + "-2", 10}, {md5Hex(1)[:30] + "-2", 10}}, 2},
		{"unknown ETag or size", []obj{{"", 10}, {"", 10}, {md5Hex(2), -1}, {md5Hex(2), -1}}, 4},
		{"not hex", []obj{{"zz" + md5Hex(3)[2:], 10}, {"zz" + md5Hex(3)[2:], 10}}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newDistinctCounter()
			for _, o := range tt.objs {
				d.add(o.etag, o.size)
			}
			require.Equal(t, tt.want, d.count())
		})
	}

	for _, n := range []int{exactPairs, 3 * exactPairs} {
		d := newDistinctCounter()
		for i := range n {
			d.add(md5Hex(i), 1000)
			if i%3 == 0 {
				d.add(md5Hex(i), 1000) // a copy
			}
		}
		got := float64(d.count())
		if n <= exactPairs {
			require.Equal(t, float64(n), got, "exact up to the bound")
			require.Nil(t, d.hll)
			continue
		}
		require.Nil(t, d.exact, "the exact set is dropped past the bound")
		require.Len(t, d.hll, 1<<hllBits)
		require.Less(t, math.Abs(got-float64(n))/float64(n), 0.02, "HyperLogLog estimate %v of %d", got, n)
	}
}
