package dashboard

import (
	"encoding/json"
	"fmt"

	"reverify/storage/objects"
)

// maskedFields are payload fields that can identify a person: object keys
// and listing prefixes are often user IDs or names.
var maskedFields = map[string]bool{"key": true, "object_key": true, "prefix": true, "keys": true, "manifest": true}

// KeyHash is how logs and masked views name an object, as the worker logs it.
func KeyHash(bucket, key string) string { return objects.KeyHash(bucket, key) }

// MaskPayload rewrites a task payload for display: the values of fields
// that can identify a person are replaced by a hash; anything that is not
// a JSON object is hidden whole.
func MaskPayload(_ string, payload []byte) string {
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return fmt.Sprintf("(%d bytes, hidden)", len(payload))
	}
	bucket, _ := m["bucket"].(string)
	for k, v := range m {
		if !maskedFields[k] {
			continue
		}
		s, ok := v.(string)
		if !ok {
			m[k] = "(hidden)"
			continue
		}
		m[k] = "sha256:" + KeyHash(bucket, s)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "(hidden)"
	}
	return string(b)
}

// MaskResult hides task results whole: reverify's tasks write none, and a
// result could echo anything.
func MaskResult(_ string, result []byte) string {
	if len(result) == 0 {
		return ""
	}
	return fmt.Sprintf("(%d bytes, hidden)", len(result))
}
