package objects

import "reverify"

// KeyHash names an object in logs and masked views without its key, which
// can name a person (see reverify.KeyHash).
func KeyHash(bucket, key string) string { return reverify.KeyHash(bucket, key) }
