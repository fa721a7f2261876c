package objects

import (
	"crypto/sha256"
	"encoding/hex"
)

// KeyHash names an object in logs and masked views without its key, which
// can name a person: the first 8 bytes of sha256(bucket/key), hex encoded.
func KeyHash(bucket, key string) string {
	sum := sha256.Sum256([]byte(bucket + "/" + key))
	return hex.EncodeToString(sum[:8])
}
