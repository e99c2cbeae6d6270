package election

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// Term is one term of leadership, as Run hands it to the work it runs.
type Term struct {
	// Fence is the term's fencing token: strictly greater than every
	// earlier term's, in this election, whoever led it.
	Fence coord.Revision
	// Election is the candidate that leads: for Proclaim, and for writes
	// guarded by IsLeader.
	Election *Election
}

// RunOption configures Run.
type RunOption func(*runConfig)

type runConfig struct {
	ttl        time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
	onChange   func(RunEvent)
}

// WithSessionTTL sets the TTL of the sessions Run stands with: how long
// after this process dies or is cut off another candidate takes over.
// Default coord.DefaultSessionTTL.
func WithSessionTTL(ttl time.Duration) RunOption { return func(c *runConfig) { c.ttl = ttl } }

// WithBackoff bounds the wait before Run tries again after a failure (a
// lost session, no leader reachable): from min, doubling up to max, with
// jitter. Default 100ms to 5s.
func WithBackoff(min, max time.Duration) RunOption {
	return func(c *runConfig) { c.minBackoff, c.maxBackoff = min, max }
}

// OnChange makes Run call f, from Run's goroutine, at each change of its
// state: elected, term ended, or a failed attempt to stand.
func OnChange(f func(RunEvent)) RunOption { return func(c *runConfig) { c.onChange = f } }

// RunEventType says what a RunEvent reports.
type RunEventType int

const (
	// Elected: a term began; Fence is its token.
	Elected RunEventType = iota
	// TermEnded: the term with Fence ended; Err is nil when work returned
	// while leading (Run resigned), and wraps ErrLost when leadership was
	// lost.
	TermEnded
	// Retrying: standing failed with Err (a lost session, no quorum);
	// Run tries again after a backoff.
	Retrying
)

// RunEvent is one change of Run's state, given to OnChange.
type RunEvent struct {
	Type  RunEventType
	Fence coord.Revision
	Err   error
}

// Run stands for the leadership of election name on n, with value as the
// leader's value, runs work while it leads, and stands again when a term
// ends, until ctx ends: Curator's LeaderSelector with auto-requeue.
//
// work runs in Run's goroutine with a context that is canceled the moment
// this process learns the term is over: its key deleted, or its session
// lost (a pause or a partition longer than the session's TTL; the session
// gives up no later than the cluster can expire its lease, so a new leader
// is elected only after that). context.Cause then wraps ErrLost. Guard
// writes to shared state with the term's fence or with IsLeader in a Txn:
// work may still be running, unaware, when another term has begun.
//
// When work returns while its term holds, Run resigns, so that the next
// candidate is elected at once; a nil return then stands again (this
// process may well be elected again at once, as it would be alone), and
// an error ends Run with that error. A term lost while work runs is not
// an error: once work returns, Run stands again, with a new session when
// the old one was lost, backing off after failures (WithBackoff).
//
// Run returns ctx's error when ctx ends, an error wrapping coord.ErrClosed
// when n closes, work's error, or an error wrapping coord.ErrInvalidTTL
// for a bad WithSessionTTL. It blocks until then, and closes its sessions
// before it returns.
func Run(ctx context.Context, n *coord.Node, name string, value []byte, work func(context.Context, Term) error, opts ...RunOption) error {
	c := runConfig{ttl: coord.DefaultSessionTTL, minBackoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second}
	for _, o := range opts {
		o(&c)
	}
	if c.minBackoff <= 0 || c.maxBackoff < c.minBackoff {
		return fmt.Errorf("election: WithBackoff(%v, %v): want 0 < min <= max", c.minBackoff, c.maxBackoff)
	}
	emit := func(ev RunEvent) {
		if c.onChange != nil {
			c.onChange(ev)
		}
	}
	var s *coord.Session
	defer func() {
		if s != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			s.Close(cctx)
			cancel()
		}
	}()
	backoff := c.minBackoff
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := func() error {
			if s != nil && s.Err() != nil {
				s = nil // lost: its lease is gone or going
			}
			if s == nil {
				ns, err := n.NewSession(ctx, coord.WithTTL(c.ttl))
				if err != nil {
					return err
				}
				s = ns
			}
			e := New(s, name)
			if err := e.Campaign(ctx, value); err != nil {
				return err
			}
			backoff = c.minBackoff
			return runTerm(ctx, e, work, emit)
		}()
		var werr workError
		switch {
		case err == nil:
			continue
		case errors.As(err, &werr):
			return werr.err
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, coord.ErrClosed), errors.Is(err, coord.ErrInvalidTTL):
			return err
		}
		emit(RunEvent{Type: Retrying, Err: err})
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, c.maxBackoff)
	}
}

// workError is work's own error, which ends Run.
type workError struct{ err error }

func (e workError) Error() string { return e.err.Error() }

// runTerm runs work for the term e just won, and ends the term: with a
// resign when work returned while leading. It returns nil to stand again,
// or work's error as a workError.
func runTerm(ctx context.Context, e *Election, work func(context.Context, Term) error, emit func(RunEvent)) error {
	fence := e.Fence()
	emit(RunEvent{Type: Elected, Fence: fence})
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := e.Done()
	stopped := make(chan struct{})
	go func() {
		select {
		case <-done:
			cancel(fmt.Errorf("%w (term with fence %d): %w", ErrLost, fence, e.Err()))
		case <-stopped:
		}
	}()
	werr := work(wctx, Term{Fence: fence, Election: e})
	close(stopped)
	select {
	case <-done:
		emit(RunEvent{Type: TermEnded, Fence: fence, Err: e.Err()})
		return nil
	default:
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	rerr := e.Resign(rctx)
	rcancel()
	if errors.Is(rerr, ErrNotLeader) {
		rerr = e.Err()
	}
	emit(RunEvent{Type: TermEnded, Fence: fence, Err: rerr})
	if werr != nil && ctx.Err() == nil {
		return workError{werr}
	}
	return nil
}
