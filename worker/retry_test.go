package worker

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"reverify/liveness"
)

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: time.Second, Cap: time.Minute, Min: 100 * time.Millisecond}
	tests := []struct {
		name     string
		n        int
		err      error
		min, max time.Duration
	}{
		{"first retry is full jitter under base", 0, errors.New("boom"), b.Min, time.Second},
		{"grows exponentially", 4, errors.New("boom"), b.Min, 16 * time.Second},
		{"capped", 20, errors.New("boom"), b.Min, time.Minute},
		{"huge attempt numbers do not overflow", 200, errors.New("boom"), b.Min, time.Minute},
		{"retry-after is a floor", 0, fmt.Errorf("call: %w", &liveness.Error{Kind: liveness.RateLimited, RetryAfter: 7 * time.Second}),
			7 * time.Second, 7*time.Second + 700*time.Millisecond + time.Millisecond},
		{"wait errors wait", 3, &WaitError{After: 30 * time.Second, Err: errors.New("circuit open")},
			30 * time.Second, 33*time.Second + time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			seen := map[time.Duration]bool{}
			for range 200 {
				d := b.Delay(tt.n, tt.err, asynq.NewTask("x", nil))
				require.GreaterOrEqual(t, d, tt.min)
				require.LessOrEqual(t, d, tt.max)
				seen[d] = true
			}
			require.Greater(t, len(seen), 1, "delays are jittered")
		})
	}
}

func TestIsFailure(t *testing.T) {
	t.Parallel()
	require.True(t, IsFailure(errors.New("5xx")))
	require.True(t, IsFailure(fmt.Errorf("x: %w", asynq.SkipRetry)))
	require.False(t, IsFailure(&WaitError{After: time.Second, Err: errors.New("429")}))
	require.False(t, IsFailure(fmt.Errorf("wrapped: %w", &WaitError{After: time.Second})))
}

func TestCheckImage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"jpeg", []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10}, true},
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00"), true},
		{"gif", []byte("GIF89a.."), true},
		{"webp", []byte("RIFF\x00\x00\x00\x00WEBPVP8 "), true},
		{"heic", []byte("\x00\x00\x00\x18ftypheic"), true},
		{"empty", nil, false},
		{"text", []byte("hello, this is not a photo"), false},
		{"html", []byte("<html><body>oops</body></html>"), false},
		{"pdf", []byte("%PDF-1.7"), false},
		{"truncated jpeg magic", []byte{0xFF, 0xD8}, false},
	}
	for _, tt := range tests {
		why := checkImage(tt.b)
		if tt.ok {
			require.Empty(t, why, tt.name)
		} else {
			require.NotEmpty(t, why, tt.name)
			if len(tt.b) > 8 {
				require.NotContains(t, why, string(tt.b[3:]), "never quotes the bytes: %s", tt.name)
			}
		}
	}
}
