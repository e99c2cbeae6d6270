package raftnode

import (
	"context"
	"errors"
	"fmt"

	"github.com/lni/dragonboat/v4"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
)

// This file is the one place where dragonboat's outcomes become coordkit's
// errors. A request (a proposal or a ReadIndex round) is made in attempts;
// after each failed attempt, its error is classified (classify), and the
// attempt's situation decides whether to try again at once, after a
// backoff, or to give the caller an error (attempt.final).

// class is what a failed attempt's error says about the request.
type class int

const (
	// classOther: an error this package has no rule for; reported as it is.
	classOther class = iota
	// classTimedOut: the attempt's time ran out while the request was on
	// its way or in the log (ErrTimeout, errLeaderChanged): a write may
	// have been applied.
	classTimedOut
	// classCanceled: the caller's context was canceled while the request
	// was on its way: a write may have been applied.
	classCanceled
	// classDropped: dragonboat refused the request before it entered the
	// log (no leader known yet, a full queue): it is safe to send again.
	classDropped
	// classNoTime: the deadline left too little time for an attempt (one
	// needs a Raft tick), or none was set.
	classNoTime
	// classRefused: the leader rejected or aborted the request after it
	// was proposed; a write's outcome is unknown.
	classRefused
	// classClosed: the member or the shard's replica is closed.
	classClosed
	// classTooLarge: the request is over dragonboat's size limit.
	classTooLarge
)

// classify sorts one of dragonboat's request errors into its class.
func classify(err error) class {
	switch {
	case errors.Is(err, dragonboat.ErrTimeout):
		return classTimedOut
	case errors.Is(err, dragonboat.ErrCanceled):
		return classCanceled
	case errors.Is(err, dragonboat.ErrShardNotReady), errors.Is(err, dragonboat.ErrSystemBusy),
		errors.Is(err, dragonboat.ErrShardNotInitialized):
		return classDropped
	case errors.Is(err, dragonboat.ErrTimeoutTooSmall), errors.Is(err, dragonboat.ErrDeadlineNotSet),
		errors.Is(err, dragonboat.ErrInvalidDeadline):
		return classNoTime
	case errors.Is(err, dragonboat.ErrRejected), errors.Is(err, dragonboat.ErrAborted):
		return classRefused
	case errors.Is(err, dragonboat.ErrClosed), errors.Is(err, dragonboat.ErrShardClosed),
		errors.Is(err, dragonboat.ErrShardNotFound):
		return classClosed
	case errors.Is(err, dragonboat.ErrPayloadTooBig):
		return classTooLarge
	}
	return classOther
}

// attempt is the situation after one failed attempt of a request.
type attempt struct {
	err   error // dragonboat's error for the attempt
	write bool  // a proposal, whose outcome may become unknown
	n     int   // the attempt's number, from 0
	// sent: this attempt or an earlier one may have entered the log.
	sent bool
	// expired: the deadline leaves no time for another attempt.
	expired bool
	// ctxErr is the caller's context's error, if it ended.
	ctxErr error
	// closed is the member's closed error, if it is closed.
	closed error
	// leaderKnown: this member knows a leader of the shard (read by the
	// caller only when final needs it: see needsLeader).
	leaderKnown bool
	shard       int
}

// retryNow reports whether to make another attempt at once: an attempt
// that timed out, with time left. A write is made again under the same
// request ID, which the state machine applies at most once.
func (a *attempt) retryNow() bool {
	return classify(a.err) == classTimedOut && !a.expired
}

// retryLater reports whether to make another attempt after a backoff: the
// request was dropped before it entered the log, and there is time left.
func (a *attempt) retryLater() bool {
	return classify(a.err) == classDropped && !a.expired
}

// needsLeader reports whether final's answer depends on leaderKnown: a
// read whose time ran out while attempts timed out.
func (a *attempt) needsLeader() bool {
	c := classify(a.err)
	return !a.write && a.closed == nil && !errors.Is(a.ctxErr, context.Canceled) &&
		(a.expired || c == classNoTime) && (c == classTimedOut || c == classNoTime)
}

// final is the caller's error once no further attempt is made.
//
// The rules: a request that may have entered the log (sent) and cannot
// learn its outcome is ErrOutcomeUnknown for a write; a request only ever
// dropped, until the deadline, is ErrNoLeader; every error that ends with
// the caller's context, or its deadline, matches context.Canceled or
// context.DeadlineExceeded; a closed member is ErrClosed (with the cause of
// a member that stopped itself), for a write that may have been applied
// within ErrOutcomeUnknown.
func (a *attempt) final() error {
	c := classify(a.err)
	if !a.write {
		return a.finalRead(c)
	}
	dropped := c == classDropped || c == classNoTime
	switch {
	case a.closed != nil:
		if c == classDropped && !a.sent {
			return a.closed
		}
		return fmt.Errorf("%w: %w", errdefs.ErrOutcomeUnknown, a.closed)
	case a.sent && (a.expired || dropped):
		cause := a.ctxErr
		if cause == nil {
			cause = context.DeadlineExceeded
		}
		return fmt.Errorf("%w: shard %d: %w", errdefs.ErrOutcomeUnknown, a.shard, cause)
	case a.ctxErr != nil && c != classTimedOut && c != classCanceled:
		// Only dropped attempts were made, so nothing was applied.
		if errors.Is(a.ctxErr, context.DeadlineExceeded) && dropped && a.n > 0 {
			return fmt.Errorf("%w: shard %d: %w", errdefs.ErrNoLeader, a.shard, context.DeadlineExceeded)
		}
		return fmt.Errorf("coord: %w", a.ctxErr)
	case a.expired && dropped && a.n > 0:
		return fmt.Errorf("%w: shard %d: %w", errdefs.ErrNoLeader, a.shard, context.DeadlineExceeded)
	case a.expired && dropped:
		return fmt.Errorf("coord: %w (%v)", context.DeadlineExceeded, a.err)
	}
	return a.translate(c)
}

func (a *attempt) finalRead(c class) error {
	switch {
	case a.closed != nil:
		return a.closed
	case errors.Is(a.ctxErr, context.Canceled):
		return fmt.Errorf("coord: %w", a.ctxErr)
	case (a.expired || c == classNoTime) && (c == classDropped || c == classTimedOut || c == classNoTime):
		// The deadline passed while attempts timed out or found no
		// leader: say which, without dragonboat's wording.
		if c == classDropped || !a.leaderKnown {
			return fmt.Errorf("%w: shard %d: %w", errdefs.ErrNoLeader, a.shard, context.DeadlineExceeded)
		}
		return fmt.Errorf("coord: shard %d: the leader did not confirm a linearizable read in time: %w", a.shard, context.DeadlineExceeded)
	}
	return a.translate(c)
}

// translate is the error of class c with nothing else known: the rules
// for a request that failed outright, and for the membership calls (see
// Shard.Membership), which make their own attempts.
func (a *attempt) translate(c class) error {
	err := a.err
	switch c {
	case classTimedOut:
		if a.write {
			return fmt.Errorf("%w: %w", errdefs.ErrOutcomeUnknown, context.DeadlineExceeded)
		}
		return fmt.Errorf("coord: %w", context.DeadlineExceeded)
	case classCanceled:
		cause := context.Canceled
		if a.ctxErr != nil {
			cause = a.ctxErr
		}
		if a.write {
			return fmt.Errorf("%w: %w", errdefs.ErrOutcomeUnknown, cause)
		}
		return fmt.Errorf("coord: %w", cause)
	case classRefused:
		if a.write {
			return fmt.Errorf("%w: %w", errdefs.ErrOutcomeUnknown, err)
		}
		return fmt.Errorf("coord: request aborted: %w", err)
	case classClosed:
		if a.closed != nil {
			return a.closed
		}
		return errdefs.ErrClosed
	case classTooLarge:
		return fmt.Errorf("%w: %w", errdefs.ErrRequestTooLarge, err)
	case classDropped:
		// Only reached once the deadline passed while retrying.
		return fmt.Errorf("%w: %w", errdefs.ErrNoLeader, context.DeadlineExceeded)
	case classNoTime:
		return fmt.Errorf("coord: %w (%v)", context.DeadlineExceeded, err)
	}
	return fmt.Errorf("coord: %w", err)
}

// translate is the error of a request that failed with err, with nothing
// else known of it: ctx is the caller's, write says whether the request
// was a write.
func translate(ctx context.Context, err error, write bool) error {
	if err == nil {
		return nil
	}
	a := attempt{err: err, write: write, ctxErr: ctx.Err()}
	return a.translate(classify(err))
}

// errLeaderChanged ends an attempt whose shard got a new leader while it
// waited: a request forwarded to the old leader may have been lost, and
// would otherwise wait out its attempt. It is a timeout to every caller:
// the attempt may have entered the log, and is made again (writes under
// the same request ID, applied at most once).
var errLeaderChanged = fmt.Errorf("coord: the leader changed during the attempt: %w", dragonboat.ErrTimeout)

// awaitRequest waits for an asynchronous request's outcome, for ctx, or
// for leaderChanged to close, and reports a failure with the error
// dragonboat's Sync calls give for it (errLeaderChanged, a timeout, when
// the leader changed first), for classify.
func awaitRequest(ctx context.Context, rs *dragonboat.RequestState, leaderChanged <-chan struct{}) (dragonboat.RequestResult, error) {
	select {
	case r := <-rs.AppliedC():
		return requestOutcome(r)
	case <-leaderChanged:
		select {
		case r := <-rs.AppliedC(): // an outcome that is there already wins
			return requestOutcome(r)
		default:
			return dragonboat.RequestResult{}, errLeaderChanged
		}
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return dragonboat.RequestResult{}, dragonboat.ErrTimeout
		}
		return dragonboat.RequestResult{}, dragonboat.ErrCanceled
	}
}

// requestOutcome is r with the error dragonboat's Sync calls give for it.
func requestOutcome(r dragonboat.RequestResult) (dragonboat.RequestResult, error) {
	switch {
	case r.Completed():
		return r, nil
	case r.Rejected():
		return r, dragonboat.ErrRejected
	case r.Timeout():
		return r, dragonboat.ErrTimeout
	case r.Terminated():
		return r, dragonboat.ErrShardClosed
	case r.Dropped():
		return r, dragonboat.ErrShardNotReady
	case r.Aborted():
		return r, dragonboat.ErrAborted
	}
	return r, fmt.Errorf("coord: unknown request outcome %v", r)
}
