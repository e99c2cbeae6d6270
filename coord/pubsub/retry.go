package pubsub

import (
	"context"
	"errors"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// transient reports whether err, met by a background loop whose context is
// still live, is worth retrying: a deadline, no reachable leader, or a write
// of unknown outcome (every write these loops make is guarded by a compare,
// so repeating it is safe). Leader elections cause them; a subscriber or
// group member must ride them out rather than end.
func transient(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || errors.Is(err, coord.ErrClosed) {
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, coord.ErrNoLeader) ||
		errors.Is(err, coord.ErrOutcomeUnknown)
}

// retryPause waits before attempt number attempt (from 0) of a retried call:
// 50ms doubling to 1s. It returns ctx's error if ctx ends first.
func retryPause(ctx context.Context, attempt int) error {
	d := 50 * time.Millisecond << min(attempt, 4)
	t := time.NewTimer(min(d, time.Second))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retrying calls f until it returns nil or an error that is not transient.
func retrying(ctx context.Context, f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if !transient(ctx, err) {
			return err
		}
		if err := retryPause(ctx, attempt); err != nil {
			return err
		}
	}
}
