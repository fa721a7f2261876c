package dashboard

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
)

// objRefs turns (bucket, key) into the opaque "o" parameter of object
// links, so URLs (history, proxy logs) do not carry keys when keys are
// masked: then the reference is sealed with a key that lives as long as
// the process. Unmasked, it is plain base64url.
type objRefs struct{ aead cipher.AEAD }

func newObjRefs(mask bool) (objRefs, error) {
	if !mask {
		return objRefs{}, nil
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return objRefs{}, fmt.Errorf("object link key: %w", err)
	}
	block, err := aes.NewCipher(secret)
	if err != nil {
		return objRefs{}, fmt.Errorf("object link key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return objRefs{}, fmt.Errorf("object link key: %w", err)
	}
	return objRefs{aead: aead}, nil
}

func (o objRefs) encode(bucket, key string) string {
	plain := []byte(bucket + "\x00" + key)
	if o.aead == nil {
		return base64.RawURLEncoding.EncodeToString(plain)
	}
	nonce := make([]byte, o.aead.NonceSize())
	_, _ = rand.Read(nonce) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(o.aead.Seal(nonce, nonce, plain, nil))
}

// url is the link to page ("object" or "image") of an object of a run.
func (o objRefs) url(runID, page, bucket, key string) string {
	return "/runs/" + runID + "/" + page + "?" + url.Values{"o": {o.encode(bucket, key)}}.Encode()
}

func (o objRefs) decode(ref string) (bucket, key string, ok bool) {
	raw, err := base64.RawURLEncoding.DecodeString(ref)
	if err != nil {
		return "", "", false
	}
	if o.aead != nil {
		n := o.aead.NonceSize()
		if len(raw) < n {
			return "", "", false
		}
		if raw, err = o.aead.Open(nil, raw[:n], raw[n:], nil); err != nil {
			return "", "", false
		}
	}
	bucket, key, ok = strings.Cut(string(raw), "\x00")
	return bucket, key, ok && bucket != "" && key != ""
}
