package tasks

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

func TestVerifyPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	longKey := strings.Repeat(strings.Repeat("k", 200)+"/", 6)[:1024]
	for _, key := range []string{"a.jpg", "selfies/Zoë Ångström/ü 1.jpg", "a+b%20c&d=e.jpg", longKey} {
		p := VerifyPayload{RunID: "0b9e8f3c-7f0e-4a57-9a6b-2a1d3c4e5f60", Bucket: "kyc", Key: key, Version: "v1"}
		task, err := NewVerifyTask(p, "q1", asynq.MaxRetry(3))
		require.NoError(t, err)
		require.Equal(t, TypeVerify, task.Type())
		require.NotContains(t, string(task.Payload()), "faceImage", "payload carries IDs only")
		got, err := ParseVerifyPayload(task.Payload())
		require.NoError(t, err)
		require.Equal(t, p, got)
	}
}

func TestTaskIDIsDerivedFromRunAndObject(t *testing.T) {
	t.Parallel()
	base := VerifyPayload{RunID: "r1", Bucket: "b", Key: "k"}
	require.Equal(t, base.TaskID(), base.TaskID(), "stable")
	for name, other := range map[string]VerifyPayload{
		"run":            {RunID: "r2", Bucket: "b", Key: "k"},
		"bucket":         {RunID: "r1", Bucket: "b2", Key: "k"},
		"key":            {RunID: "r1", Bucket: "b", Key: "k2"},
		"bucket/key mix": {RunID: "r1", Bucket: "bk", Key: ""},
	} {
		require.NotEqual(t, base.TaskID(), other.TaskID(), name)
	}
	require.Equal(t, base.TaskID(), VerifyPayload{RunID: "r1", Bucket: "b", Key: "k", Version: "v9"}.TaskID(),
		"the version does not make a second task for the same object")
	require.NotEqual(t, base.TaskID(), VerifyPayload{RunID: "r1", Bucket: "b", Key: "k", Seq: 7}.TaskID(),
		"a retried object (a new dispatch sequence) gets a task of its own")
	require.Equal(t, VerifyPayload{RunID: "r1", Bucket: "b", Key: "k", Seq: 7}.TaskID(),
		VerifyPayload{RunID: "r1", Bucket: "b", Key: "k", Seq: 7, Version: "v"}.TaskID())
	long := VerifyPayload{RunID: "r1", Bucket: "b", Key: strings.Repeat("x", 1024), Seq: 1 << 62}
	require.Less(t, len(long.TaskID()), 100, "task IDs stay short for 1,024-byte keys")
}

func TestParseVerifyPayloadRejectsBadPayloads(t *testing.T) {
	t.Parallel()
	for name, payload := range map[string]string{
		"not json":       "{",
		"empty":          "",
		"missing run":    `{"bucket":"b","key":"k"}`,
		"missing bucket": `{"run_id":"r","key":"k"}`,
		"missing key":    `{"run_id":"r","bucket":"b"}`,
		"wrong types":    `{"run_id":1,"bucket":"b","key":"k"}`,
	} {
		_, err := ParseVerifyPayload([]byte(payload))
		require.ErrorIs(t, err, ErrBadPayload, name)
	}
	_, err := NewVerifyTask(VerifyPayload{Bucket: "b", Key: "k"}, "q")
	require.True(t, errors.Is(err, ErrBadPayload))
	b, _ := json.Marshal(VerifyPayload{RunID: "r", Bucket: "b", Key: "k"})
	_, err = ParseVerifyPayload(b)
	require.NoError(t, err)
}
