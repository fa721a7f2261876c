package fakeapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reverify"
	"time"
)

// control serves one /_fake/ endpoint: method only, JSON out.
func (s *Server) control(w http.ResponseWriter, r *http.Request, method string, fn func() (any, error)) {
	if r.Method != method {
		w.Header().Set("Allow", method)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	v, err := fn()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", jsonType)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// publicOptions is Options without the key.
func (s *Server) publicOptions() Options {
	o := s.Options()
	o.APIKey = ""
	return o
}

// postOptions applies a JSON Options document: fields present replace the
// current values, others are kept.
func (s *Server) postOptions(r *http.Request) (any, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	o := s.opts
	err = json.Unmarshal(data, &o)
	if err == nil {
		s.setOptionsLocked(o)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("invalid options: %w", err)
	}
	return s.publicOptions(), nil
}

// optionsJSON is the wire form of Options.
type optionsJSON struct {
	APIKey        string            `json:"apiKey,omitempty"`
	Latency       reverify.Duration `json:"latency"`
	ErrorRate     float64           `json:"errorRate"`
	RateLimitRate float64           `json:"rateLimitRate"`
	RetryAfter    reverify.Duration `json:"retryAfter"`
	SlowRate      float64           `json:"slowRate"`
	SlowLatency   reverify.Duration `json:"slowLatency"`
	MalformedRate float64           `json:"malformedRate"`
	Forbidden     bool              `json:"forbidden"`
	MaxBodyBytes  int64             `json:"maxBodyBytes"`
	Seed          int64             `json:"seed"`
	HiddenRate    float64           `json:"hiddenRate"`
	HiddenBurst   float64           `json:"hiddenBurst"`
	LoadLatency   reverify.Duration `json:"loadLatency"`
}

// MarshalJSON writes durations as strings such as "250ms".
func (o Options) MarshalJSON() ([]byte, error) {
	return json.Marshal(optionsJSON{
		APIKey: o.APIKey, Latency: reverify.Duration(o.Latency), ErrorRate: o.ErrorRate,
		RateLimitRate: o.RateLimitRate, RetryAfter: reverify.Duration(o.RetryAfter), SlowRate: o.SlowRate,
		SlowLatency: reverify.Duration(o.SlowLatency), MalformedRate: o.MalformedRate, Forbidden: o.Forbidden,
		MaxBodyBytes: o.MaxBodyBytes, Seed: o.Seed,
		HiddenRate: o.HiddenRate, HiddenBurst: o.HiddenBurst, LoadLatency: reverify.Duration(o.LoadLatency),
	})
}

// UnmarshalJSON reads durations as strings ("250ms") or integer
// nanoseconds. Fields absent from the JSON keep their current values.
func (o *Options) UnmarshalJSON(data []byte) error {
	j := optionsJSON{
		APIKey: o.APIKey, Latency: reverify.Duration(o.Latency), ErrorRate: o.ErrorRate,
		RateLimitRate: o.RateLimitRate, RetryAfter: reverify.Duration(o.RetryAfter), SlowRate: o.SlowRate,
		SlowLatency: reverify.Duration(o.SlowLatency), MalformedRate: o.MalformedRate, Forbidden: o.Forbidden,
		MaxBodyBytes: o.MaxBodyBytes, Seed: o.Seed,
		HiddenRate: o.HiddenRate, HiddenBurst: o.HiddenBurst, LoadLatency: reverify.Duration(o.LoadLatency),
	}
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*o = Options{
		APIKey: j.APIKey, Latency: time.Duration(j.Latency), ErrorRate: j.ErrorRate,
		RateLimitRate: j.RateLimitRate, RetryAfter: time.Duration(j.RetryAfter), SlowRate: j.SlowRate,
		SlowLatency: time.Duration(j.SlowLatency), MalformedRate: j.MalformedRate, Forbidden: j.Forbidden,
		MaxBodyBytes: j.MaxBodyBytes, Seed: j.Seed,
		HiddenRate: j.HiddenRate, HiddenBurst: j.HiddenBurst, LoadLatency: time.Duration(j.LoadLatency),
	}
	return nil
}
