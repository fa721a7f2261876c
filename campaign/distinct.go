package campaign

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/bits"
	"strings"
)

// Distinct images are estimated before anything is fetched from what a
// listing says: objects with the same plain-MD5 ETag and the same size
// are very likely the same bytes. It is only an estimate (the worker's
// SHA-256 of the bytes alone decides what is a copy: MD5 collisions can
// be crafted, and a KMS-encrypted object's ETag is no MD5 of its bytes).
// Memory is bounded whatever the number of objects: the pairs are kept
// exactly up to exactPairs (about 24 B each plus the map's overhead,
// under 6 MB), then in a HyperLogLog of 2^hllBits one-byte registers
// (16 KiB; standard error 1.04/√16384 ≈ 0.8%).
const (
	exactPairs = 1 << 16
	hllBits    = 14
)

// distinctCounter counts distinct (MD5, size) pairs, and objects it
// cannot pair (multipart or unknown ETag, unknown size) one each.
type distinctCounter struct {
	exact    map[[24]byte]struct{}
	hll      []uint8 // nil while exact holds every pair
	unpaired int64
}

func newDistinctCounter() *distinctCounter {
	return &distinctCounter{exact: map[[24]byte]struct{}{}}
}

// add counts one object that would be sent.
func (d *distinctCounter) add(etag string, size int64) {
	var k [24]byte
	if size < 0 || len(etag) != 32 || strings.ContainsRune(etag, '-') {
		d.unpaired++
		return
	}
	if _, err := hex.Decode(k[:16], []byte(etag)); err != nil {
		d.unpaired++
		return
	}
	binary.LittleEndian.PutUint64(k[16:], uint64(size))
	if d.hll == nil {
		d.exact[k] = struct{}{}
		if len(d.exact) <= exactPairs {
			return
		}
		d.hll = make([]uint8, 1<<hllBits)
		for p := range d.exact {
			d.observe(p)
		}
		d.exact = nil
		return
	}
	d.observe(k)
}

// observe adds a pair to the HyperLogLog (Flajolet et al., 2007).
func (d *distinctCounter) observe(k [24]byte) {
	// The MD5 is already uniform; the size is mixed in (splitmix64's
	// finaliser) so equal MD5s of different sizes stay apart.
	h := binary.LittleEndian.Uint64(k[:8]) ^ binary.LittleEndian.Uint64(k[16:])*0x9e3779b97f4a7c15
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	i := h >> (64 - hllBits)
	rank := uint8(bits.LeadingZeros64(h<<hllBits|1<<(hllBits-1)) + 1)
	if rank > d.hll[i] {
		d.hll[i] = rank
	}
}

// count is the number of distinct images: exact below exactPairs pairs,
// else the HyperLogLog's estimate; plus every unpaired object.
func (d *distinctCounter) count() int64 {
	if d.hll == nil {
		return int64(len(d.exact)) + d.unpaired
	}
	m := float64(len(d.hll))
	var sum float64
	zeros := 0
	for _, r := range d.hll {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	est := 0.7213 / (1 + 1.079/m) * m * m / sum
	if est <= 2.5*m && zeros > 0 {
		est = m * math.Log(m/float64(zeros))
	}
	return int64(math.Round(est)) + d.unpaired
}
