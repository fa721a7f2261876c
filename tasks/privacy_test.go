package tasks

import (
	"context"
	"errors"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"reverify"
	"reverify/storage/objects"
)

// newObjectsLedger records every object as new.
type newObjectsLedger struct{}

func (newObjectsLedger) AddObjects(_ context.Context, _ string, objs []reverify.ObjectRef) ([]reverify.ObjectRef, error) {
	return objs, nil
}
func (newObjectsLedger) StartRun(context.Context, string) error { return nil }
func (newObjectsLedger) PendingObjects(context.Context, string, func(reverify.ObjectRef) error) error {
	return nil
}

// downQueue is Redis refusing every task.
type downQueue struct{}

func (downQueue) EnqueueContext(context.Context, *asynq.Task, ...asynq.Option) (*asynq.TaskInfo, error) {
	return nil, errors.New("connection refused")
}

// TestEnqueueErrorsNameObjectsByKeyHash: an enqueue that fails (logged
// by the CLI and by the worker listing a run) names the object by its key
// hash.
func TestEnqueueErrorsNameObjectsByKeyHash(t *testing.T) {
	t.Parallel()
	const key = "users/john-smith-1977/selfie.jpg"
	src := func(ctx context.Context, fn func(Object) error) error {
		return fn(Object{Bucket: "kyc", Key: key, Size: -1})
	}
	_, err := NewProducer(newObjectsLedger{}, downQueue{}).Enqueue(context.Background(),
		reverify.Run{ID: "0b9e8f3c-7f0e-4a57-9a6b-2a1d3c4e5f60", Queue: "q"}, src, nil)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "john-smith")
	require.Contains(t, err.Error(), objects.KeyHash("kyc", key))
}
