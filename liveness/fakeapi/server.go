package fakeapi

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"image"
	_ "image/gif" // register decoders for image.DecodeConfig
	_ "image/jpeg"
	_ "image/png"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/asm/base64" // the same strict decoding as encoding/base64, SIMD-fast
)

const (
	// DefaultMaxBodyBytes is the request body limit when Options.MaxBodyBytes is 0.
	DefaultMaxBodyBytes = 20 << 20
	// MinImageSide is the smallest width and height the fake can "analyse";
	// smaller images get 400 errorCode 1017.
	MinImageSide = 64
	// APIType is the apiType of every 200 answer.
	APIType = "id_live_face"

	errCodeFaceImageRequired = 1016
	errCodeAnalyzeFailed     = 1017
)

// Options are the fake's knobs. The zero value is a well-behaved API that
// accepts any key.
type Options struct {
	APIKey        string        // required x-api-key; wrong or missing → 401. "" accepts any key.
	Latency       time.Duration // added to every answer
	ErrorRate     float64       // fraction of calls answered 500/502/503 (JSON or HTML body)
	RateLimitRate float64       // fraction answered 429 with Retry-After: RetryAfter
	RetryAfter    time.Duration // sent in whole seconds, at least 1
	SlowRate      float64       // fraction delayed by SlowLatency (to trigger client timeouts)
	SlowLatency   time.Duration
	MalformedRate float64 // fraction answered 200 with truncated or invalid JSON
	Forbidden     bool    // answer 403 to everyone (IP not allowed)
	MaxBodyBytes  int64   // request body limit → 413; 0 means DefaultMaxBodyBytes
	Seed          int64   // RNG seed for the fault knobs; SetOptions reseeds
	// HiddenRate is a fleet-wide limit the vendor does not document: a
	// token bucket of HiddenRate calls/s (0 = none) holding HiddenBurst
	// tokens (0 = a fifth of a second's worth, at least 1). Calls beyond it
	// get 429 at once, without Retry-After, as the real API documents none.
	HiddenRate  float64
	HiddenBurst float64
	// LoadLatency is added to answers in proportion to the square of the
	// load: (calls in the last second ÷ HiddenRate)² × LoadLatency.
	LoadLatency time.Duration
}

// normalized clamps rates to 0..1 and fills defaults.
func (o Options) normalized() Options {
	clamp := func(f float64) float64 {
		if math.IsNaN(f) || f < 0 {
			return 0
		}
		return min(f, 1)
	}
	o.ErrorRate, o.RateLimitRate = clamp(o.ErrorRate), clamp(o.RateLimitRate)
	o.SlowRate, o.MalformedRate = clamp(o.SlowRate), clamp(o.MalformedRate)
	o.Latency, o.SlowLatency, o.RetryAfter = max(o.Latency, 0), max(o.SlowLatency, 0), max(o.RetryAfter, 0)
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if math.IsNaN(o.HiddenRate) || o.HiddenRate < 0 {
		o.HiddenRate = 0
	}
	if math.IsNaN(o.HiddenBurst) || o.HiddenBurst < 0 {
		o.HiddenBurst = 0
	}
	o.LoadLatency = max(o.LoadLatency, 0)
	return o
}

// hiddenBurst is the hidden limit's bucket size: HiddenBurst, or a fifth
// of a second's worth, at least 1.
func (o Options) hiddenBurst() float64 {
	if o.HiddenBurst > 0 {
		return o.HiddenBurst
	}
	return max(o.HiddenRate/5, 1)
}

// Call is one answer the fake gave.
type Call struct {
	TransactionID string    `json:"transactionId,omitempty"`
	HTTPStatus    int       `json:"httpStatus"`
	ErrorCode     int       `json:"errorCode,omitempty"`
	Score         float64   `json:"score"`
	Charged       bool      `json:"charged"` // the real API would bill it (200 and 400)
	At            time.Time `json:"at"`
	ImageSHA256   string    `json:"imageSha256,omitempty"` // hex, of the decoded image, when it was decoded
}

// Stats summarises the ledger and the concurrency the fake has seen.
type Stats struct {
	Calls       int         `json:"calls"`
	Scored      int         `json:"scored"`
	ByStatus    map[int]int `json:"byStatus"`
	MaxInFlight int         `json:"maxInFlight"` // peak concurrent /liveness requests
	InFlight    int         `json:"inFlight"`
	// MaxPerSecond is the most /liveness requests that arrived within any
	// one second (a sliding window): the rate the callers really sent.
	MaxPerSecond int `json:"maxPerSecond"`
	// OverLimit counts the calls answered 429 by the hidden rate limit.
	OverLimit int `json:"overLimit"`
}

// Server is the fake API. It implements http.Handler and is safe for
// concurrent use.
type Server struct {
	inFlight    atomic.Int64
	maxInFlight atomic.Int64

	mu       sync.Mutex
	arrivals []time.Time // /liveness arrivals within the last second
	maxRate  int
	opts     Options
	rng      *mrand.Rand
	ledger   []Call
	byStatus map[int]int
	scored   int

	tokens    float64   // the hidden limit's bucket
	refilled  time.Time // when tokens was last topped up
	overLimit int
}

// New returns a fake API with the given knobs.
func New(opts Options) *Server {
	s := &Server{byStatus: map[int]int{}}
	s.SetOptions(opts)
	return s
}

// SetOptions replaces the knobs and reseeds the fault RNG from opts.Seed.
// Calls already past a knob keep the old value.
func (s *Server) SetOptions(opts Options) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setOptionsLocked(opts)
}

func (s *Server) setOptionsLocked(opts Options) {
	old := s.opts
	s.opts = opts.normalized()
	if s.opts.HiddenRate != old.HiddenRate || s.opts.HiddenBurst != old.HiddenBurst {
		s.tokens, s.refilled = s.opts.hiddenBurst(), time.Time{} // a new limit starts with a full bucket
	}
	s.rng = mrand.New(mrand.NewPCG(uint64(opts.Seed), 0xfa4e_a91))
}

// Options returns the current knobs (with defaults filled in).
func (s *Server) Options() Options {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts
}

// Ledger returns a copy of every answer the fake gave, in order.
func (s *Server) Ledger() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call{}, s.ledger...)
}

// Stats returns counters over the ledger and the in-flight gauges.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Calls:        len(s.ledger),
		Scored:       s.scored,
		ByStatus:     make(map[int]int, len(s.byStatus)),
		MaxInFlight:  int(s.maxInFlight.Load()),
		InFlight:     int(s.inFlight.Load()),
		MaxPerSecond: s.maxRate,
		OverLimit:    s.overLimit,
	}
	for k, v := range s.byStatus {
		st.ByStatus[k] = v
	}
	return st
}

// Reset clears the ledger and the stats. MaxInFlight restarts from the
// requests in flight now.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ledger = nil
	s.byStatus = map[int]int{}
	s.scored, s.overLimit = 0, 0
	s.arrivals, s.maxRate = nil, 0
	s.maxInFlight.Store(s.inFlight.Load())
}

// ServeHTTP routes POST /liveness and the /_fake/ control surface.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/liveness":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			s.answer(w, http.StatusMethodNotAllowed, jsonType, msgBody("Method Not Allowed"), Call{})
			return
		}
		s.liveness(w, r)
	case "/_fake/ledger":
		s.control(w, r, http.MethodGet, func() (any, error) { return s.Ledger(), nil })
	case "/_fake/stats":
		s.control(w, r, http.MethodGet, func() (any, error) { return s.Stats(), nil })
	case "/_fake/reset":
		s.control(w, r, http.MethodPost, func() (any, error) { s.Reset(); return s.Stats(), nil })
	case "/_fake/options":
		if r.Method == http.MethodGet {
			s.control(w, r, http.MethodGet, func() (any, error) { return s.publicOptions(), nil })
			return
		}
		s.control(w, r, http.MethodPost, func() (any, error) { return s.postOptions(r) })
	default:
		s.answer(w, http.StatusNotFound, jsonType, msgBody("Not Found"), Call{})
	}
}

// enter counts a request in flight and raises the peaks if needed. It
// returns the latency the load adds, and whether the hidden limit refuses
// the call.
func (s *Server) enter() (loadDelay time.Duration, limited bool) {
	now := time.Now()
	s.mu.Lock()
	drop := 0
	for drop < len(s.arrivals) && now.Sub(s.arrivals[drop]) >= time.Second {
		drop++
	}
	s.arrivals = append(s.arrivals[drop:], now)
	s.maxRate = max(s.maxRate, len(s.arrivals))
	if r := s.opts.HiddenRate; r > 0 {
		if !s.refilled.IsZero() {
			s.tokens = min(s.opts.hiddenBurst(), s.tokens+now.Sub(s.refilled).Seconds()*r)
		}
		s.refilled = now
		if s.tokens >= 1 {
			s.tokens--
		} else {
			limited = true
		}
		load := float64(len(s.arrivals)) / r
		loadDelay = time.Duration(load * load * float64(s.opts.LoadLatency))
	}
	s.mu.Unlock()

	n := s.inFlight.Add(1)
	for {
		m := s.maxInFlight.Load()
		if n <= m || s.maxInFlight.CompareAndSwap(m, n) {
			return loadDelay, limited
		}
	}
}

// liveness answers POST /liveness.
func (s *Server) liveness(w http.ResponseWriter, r *http.Request) {
	loadDelay, limited := s.enter()
	defer s.inFlight.Add(-1)

	opts := s.Options()
	authorized := opts.APIKey == "" ||
		subtle.ConstantTimeCompare([]byte(r.Header.Get("x-api-key")), []byte(opts.APIKey)) == 1

	// Read the body before any delay: the server notices that a client went
	// away only once the body has been read.
	var data []byte
	tooLarge := r.ContentLength > opts.MaxBodyBytes
	var readErr error
	if !tooLarge {
		body := http.MaxBytesReader(w, r.Body, opts.MaxBodyBytes)
		if authorized && !opts.Forbidden {
			data, readErr = readAll(body, r.ContentLength)
		} else {
			_, readErr = io.Copy(io.Discard, body)
		}
		if _, ok := errors.AsType[*http.MaxBytesError](readErr); ok {
			tooLarge = true
		}
	}

	if limited && authorized && !opts.Forbidden {
		s.mu.Lock()
		s.overLimit++
		s.mu.Unlock()
		s.answer(w, http.StatusTooManyRequests, jsonType, msgBody("Too Many Requests"), Call{})
		return
	}
	sleep(r, opts.Latency+loadDelay)
	switch {
	case !authorized:
		s.answer(w, http.StatusUnauthorized, jsonType, msgBody("Unauthorized"), Call{})
		return
	case opts.Forbidden:
		s.answer(w, http.StatusForbidden, jsonType, msgBody("Forbidden"), Call{})
		return
	}

	if s.fault(w, r) {
		return
	}
	switch {
	case tooLarge:
		s.answer(w, http.StatusRequestEntityTooLarge, jsonType, nil, Call{TransactionID: newTransactionID()})
		return
	case readErr != nil:
		s.reject(w, 0, "invalid request body")
		return
	}

	fi, err := parseRequest(data)
	if err != nil {
		s.reject(w, 0, "invalid request body")
		return
	}
	switch {
	case fi.notString:
		s.reject(w, 0, "invalid request body")
		return
	case !fi.present:
		s.reject(w, errCodeFaceImageRequired, "faceImage is required")
		return
	case fi.badBase64:
		s.reject(w, errCodeAnalyzeFailed, "Fail to analyze face")
		return
	}
	sum := sha256.Sum256(fi.img)
	call := Call{ImageSHA256: hex.EncodeToString(sum[:])}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(fi.img))
	if err != nil || cfg.Width < MinImageSide || cfg.Height < MinImageSide {
		call.TransactionID, call.ErrorCode, call.Charged = newTransactionID(), errCodeAnalyzeFailed, true
		s.answer(w, http.StatusBadRequest, jsonType, errBody(call.TransactionID, "Fail to analyze face", errCodeAnalyzeFailed), call)
		return
	}
	call.Score = score(sum)
	call.TransactionID, call.Charged = newTransactionID(), true
	s.answer(w, http.StatusOK, jsonType, okBody(call.Score, call.TransactionID), call)
}

// fault applies the fault knobs: it may delay the call, and it answers it
// (returning true) with a 5xx, a 429 or a malformed 200.
func (s *Server) fault(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	opts := s.opts
	u, slow, variant := s.rng.Float64(), s.rng.Float64(), s.rng.IntN(6)
	s.mu.Unlock()

	if slow < opts.SlowRate {
		sleep(r, opts.SlowLatency)
	}
	switch {
	case u < opts.ErrorRate:
		status := [...]int{500, 502, 503}[variant%3]
		if variant >= 3 {
			page := "<html><head><title>" + strconv.Itoa(status) + " " + http.StatusText(status) +
				"</title></head><body><h1>" + http.StatusText(status) + "</h1></body></html>\n"
			s.answer(w, status, "text/html; charset=utf-8", []byte(page), Call{})
		} else {
			s.answer(w, status, jsonType, msgBody(http.StatusText(status)), Call{})
		}
	case u < opts.ErrorRate+opts.RateLimitRate:
		secs := max(int64(math.Ceil(opts.RetryAfter.Seconds())), 1)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		s.answer(w, http.StatusTooManyRequests, jsonType, msgBody("Too Many Requests"), Call{})
	case u < opts.ErrorRate+opts.RateLimitRate+opts.MalformedRate:
		call := Call{TransactionID: newTransactionID(), Charged: true}
		var body []byte
		if variant%2 == 0 {
			full := okBody(50, call.TransactionID)
			body = full[:len(full)/2] // truncated mid-answer
		} else {
			body = []byte(`{"apiType":"` + APIType + `","result":{"liveness_score":},"transactionId":"` + call.TransactionID + `"}`)
		}
		s.answer(w, http.StatusOK, jsonType, body, call)
	default:
		return false
	}
	return true
}

// reject answers 400 with a transaction ID; the real API bills these.
func (s *Server) reject(w http.ResponseWriter, code int, msg string) {
	call := Call{TransactionID: newTransactionID(), ErrorCode: code, Charged: true}
	s.answer(w, http.StatusBadRequest, jsonType, errBody(call.TransactionID, msg, code), call)
}

const jsonType = "application/json"

// answer records call (with status and time filled in) and writes the answer.
func (s *Server) answer(w http.ResponseWriter, status int, contentType string, body []byte, call Call) {
	call.HTTPStatus = status
	call.At = time.Now()
	s.mu.Lock()
	s.ledger = append(s.ledger, call)
	s.byStatus[status]++
	if status == http.StatusOK && call.ImageSHA256 != "" {
		s.scored++
	}
	s.mu.Unlock()

	if body == nil {
		body = errBody(call.TransactionID, http.StatusText(status), call.ErrorCode)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Score is the fake's liveness score for an image: 0..100 with two
// decimals, spread evenly, derived from the SHA-256 of the bytes.
func Score(img []byte) float64 { return score(sha256.Sum256(img)) }

func score(sum [sha256.Size]byte) float64 {
	return float64(binary.BigEndian.Uint64(sum[:8])%10001) / 100
}

func okBody(score float64, txID string) []byte {
	type result struct {
		LivenessScore float64 `json:"liveness_score"`
	}
	b, _ := json.Marshal(struct {
		APIType       string `json:"apiType"`
		Result        result `json:"result"`
		TransactionID string `json:"transactionId"`
	}{APIType, result{score}, txID})
	return b
}

func errBody(txID, msg string, code int) []byte {
	b, _ := json.Marshal(struct {
		TransactionID string `json:"transactionId,omitempty"`
		Message       string `json:"message"`
		ErrorCode     int    `json:"errorCode,omitempty"`
	}{txID, msg, code})
	return b
}

func msgBody(msg string) []byte { return errBody("", msg, 0) }

// faceImage decodes the faceImage field as it is parsed, so that neither
// the JSON string nor a copy of it is kept: the decoded image is the only
// allocation.
type faceImage struct {
	present   bool // a non-empty string
	notString bool
	badBase64 bool
	img       []byte
}

// parseRequest reads the request body. The exact form clients send,
// {"faceImage":"<base64>"}, skips the generic JSON decoder, which would
// scan a 100 KB string several times; any other form (whitespace, escapes,
// other fields) goes through it, so both answer alike.
func parseRequest(data []byte) (faceImage, error) {
	const prefix, suffix = `{"faceImage":"`, `"}`
	if enc, ok := bytes.CutPrefix(data, []byte(prefix)); ok {
		if enc, ok = bytes.CutSuffix(enc, []byte(suffix)); ok {
			if f, ok := decodePlain(enc); ok {
				return f, nil
			}
			if plainJSONString(enc) {
				var f faceImage
				err := f.UnmarshalJSON(data[len(prefix)-1 : len(data)-len(suffix)+1])
				return f, err
			}
		}
	}
	var req struct {
		FaceImage faceImage `json:"faceImage"`
	}
	err := json.Unmarshal(data, &req)
	return req.FaceImage, err
}

// decodePlain decodes enc when it is standard base64 and nothing else.
// Such a string is plain JSON as it stands (the alphabet has no quote,
// backslash or control character), so this is what the generic decoder
// would read, without first scanning the string byte by byte (that scan
// took more of the fake's CPU than hashing the image). Line breaks, which
// the base64 decoder skips but JSON forbids raw, are left to the slow path.
func decodePlain(enc []byte) (faceImage, bool) {
	if len(enc) == 0 || bytes.IndexByte(enc, '\n') >= 0 || bytes.IndexByte(enc, '\r') >= 0 {
		return faceImage{}, false
	}
	img, err := decodeImage(enc)
	if err != nil {
		return faceImage{}, false
	}
	return faceImage{present: true, img: img}, true
}

// decodeImage decodes standard, padded base64 into one allocation.
func decodeImage(enc []byte) ([]byte, error) {
	img := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
	n, err := base64.StdEncoding.Decode(img, enc)
	return img[:n], err
}

// plainJSONString reports whether b can stand between quotes in JSON as
// it is: no quote, backslash or control character, and ASCII only (so no
// UTF-8 question arises).
func plainJSONString(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

func (f *faceImage) UnmarshalJSON(b []byte) error {
	*f = faceImage{}
	switch {
	case string(b) == "null":
		return nil
	case len(b) < 2 || b[0] != '"':
		f.notString = true
		return nil
	}
	enc := b[1 : len(b)-1]
	if bytes.IndexByte(enc, '\\') >= 0 { // escaped characters such as "\/": unescape first
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		enc = []byte(s)
	}
	if len(enc) == 0 {
		return nil
	}
	f.present = true
	img, err := decodeImage(enc)
	if err != nil {
		f.badBase64 = true
		return nil
	}
	f.img = img
	return nil
}

// readAll reads r whole into one allocation sized from the Content-Length
// when there is one (plus one byte, so that reaching EOF needs no growth).
func readAll(r io.Reader, sizeHint int64) ([]byte, error) {
	if sizeHint <= 0 || sizeHint > DefaultMaxBodyBytes*4 {
		return io.ReadAll(r)
	}
	buf := make([]byte, 0, sizeHint+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // the client sent more than announced
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// newTransactionID returns 13 random lowercase base36 characters, like the
// real API's "e0nvom3caiis7".
func newTransactionID() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	var id [13]byte
	var rnd [32]byte
	for i := 0; i < len(id); {
		_, _ = rand.Read(rnd[:]) // never fails (crypto/rand since Go 1.24)
		for _, b := range rnd {
			if b >= 252 { // 252 = 7*36: reject to keep the digits uniform
				continue
			}
			id[i] = alphabet[b%36]
			if i++; i == len(id) {
				break
			}
		}
	}
	return string(id[:])
}

// sleep waits d, or until the client goes away.
func sleep(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}
