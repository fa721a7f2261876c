package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of a webhook request.
const (
	SignatureHeader = "Reverify-Signature" // t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
	EventHeader     = "Reverify-Event"     // the event's type, e.g. run.completed
	DeliveryHeader  = "Reverify-Delivery"  // the delivery's ID: the same at every retry of it
)

// Sign returns the signature header of body sent at t: the HMAC-SHA256,
// keyed with secret, of the decimal Unix time, a dot, and the body, as
// Stripe signs its webhooks. A receiver recomputes it (Verify) and
// refuses a time too far from its clock, so a captured request cannot be
// replayed later.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// ErrBadSignature means a webhook request was not signed with the secret,
// or too long ago.
var ErrBadSignature = errors.New("bad webhook signature")

// Verify checks a signature header (Sign) for body against secret, and
// that it was made within tolerance of now. Any of several v1 values may
// match (a sender rotating its secret signs with both).
func Verify(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: want t=<unix>,v1=<hex>", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s from now", ErrBadSignature, d.Round(time.Second))
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return ErrBadSignature
}
