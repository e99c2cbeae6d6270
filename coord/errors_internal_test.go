package coord

import (
	"context"
	"errors"
	"testing"

	"github.com/lni/dragonboat/v4"
)

// translate decides, in one table, what each of dragonboat's request errors
// means to a caller: a timeout or a cancellation of a write leaves its
// outcome unknown, of a read it is just the context's error; a closed or
// missing shard is ErrClosed; a full or leaderless shard, once the deadline
// passed, is ErrNoLeader; and every result still satisfies errors.Is with
// the context error a caller matches. retryable holds exactly for the
// errors of requests dropped before they entered the log.
func TestTranslateAndRetryable(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		err   error
		write bool
		is    []error // the result must be each of these
		not   []error // and none of these
		retry bool
	}{
		{"write timeout", context.Background(), dragonboat.ErrTimeout, true, []error{ErrOutcomeUnknown, context.DeadlineExceeded}, nil, false},
		{"read timeout", context.Background(), dragonboat.ErrTimeout, false, []error{context.DeadlineExceeded}, []error{ErrOutcomeUnknown}, false},
		{"write canceled by its context", canceled, dragonboat.ErrCanceled, true, []error{ErrOutcomeUnknown, context.Canceled}, nil, false},
		{"read canceled", canceled, dragonboat.ErrCanceled, false, []error{context.Canceled}, []error{ErrOutcomeUnknown}, false},
		{"write aborted", context.Background(), dragonboat.ErrAborted, true, []error{ErrOutcomeUnknown}, nil, false},
		{"read rejected", context.Background(), dragonboat.ErrRejected, false, nil, []error{ErrOutcomeUnknown, ErrClosed}, false},
		{"closed", context.Background(), dragonboat.ErrClosed, true, []error{ErrClosed}, []error{ErrOutcomeUnknown}, false},
		{"shard closed", context.Background(), dragonboat.ErrShardClosed, false, []error{ErrClosed}, nil, false},
		{"shard not found", context.Background(), dragonboat.ErrShardNotFound, false, []error{ErrClosed}, nil, false},
		{"payload too big", context.Background(), dragonboat.ErrPayloadTooBig, true, []error{ErrRequestTooLarge}, []error{ErrOutcomeUnknown}, false},
		{"shard not ready", context.Background(), dragonboat.ErrShardNotReady, true, []error{ErrNoLeader, context.DeadlineExceeded}, []error{ErrOutcomeUnknown}, true},
		{"system busy", context.Background(), dragonboat.ErrSystemBusy, true, []error{ErrNoLeader, context.DeadlineExceeded}, []error{ErrOutcomeUnknown}, true},
		{"shard not initialized", context.Background(), dragonboat.ErrShardNotInitialized, false, []error{ErrNoLeader}, nil, true},
		{"timeout too small", context.Background(), dragonboat.ErrTimeoutTooSmall, true, []error{context.DeadlineExceeded}, []error{ErrOutcomeUnknown}, false},
		{"deadline not set", context.Background(), dragonboat.ErrDeadlineNotSet, false, []error{context.DeadlineExceeded}, nil, false},
		{"another error", context.Background(), errors.New("boom"), true, nil, []error{ErrOutcomeUnknown, ErrClosed, ErrNoLeader}, false},
	} {
		got := translate(tc.ctx, tc.err, tc.write)
		if got == nil {
			t.Errorf("%s: nil", tc.name)
			continue
		}
		for _, want := range tc.is {
			if !errors.Is(got, want) {
				t.Errorf("%s: %v is not %v", tc.name, got, want)
			}
		}
		for _, bad := range tc.not {
			if errors.Is(got, bad) {
				t.Errorf("%s: %v is %v", tc.name, got, bad)
			}
		}
		if r := retryable(tc.err); r != tc.retry {
			t.Errorf("%s: retryable = %v, want %v", tc.name, r, tc.retry)
		}
	}
	if translate(context.Background(), nil, true) != nil {
		t.Error("translate(nil) is not nil")
	}
}
