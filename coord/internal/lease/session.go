package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
)

// Sessions are a member's live sessions: leases it keeps alive in the
// background until each is closed, lost, or the member ends (coord.Session
// documents what its users see). Set the fields before the first Start.
type Sessions struct {
	Leases         *Set
	Member         context.Context // the member's life: sessions end with it
	RequestTimeout time.Duration   // bounds the revoke of a lost session's lease
	Go             func(func())    // runs the keep-alive loops as the member's goroutines
	Logger         *slog.Logger

	mu   sync.Mutex
	live map[*Session]struct{}
}

// Session is one lease kept alive by Sessions.
type Session struct {
	ID  int64
	TTL time.Duration

	ss     *Sessions
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

// Start keeps lease id, granted with ttl, alive until the session is
// closed, lost, or the member ends.
func (ss *Sessions) Start(id int64, ttl time.Duration) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{ID: id, TTL: ttl, ss: ss, cancel: cancel, done: make(chan struct{})}
	ss.mu.Lock()
	if ss.live == nil {
		ss.live = map[*Session]struct{}{}
	}
	ss.live[s] = struct{}{}
	ss.mu.Unlock()
	ss.Go(func() { s.keepAlive(ctx) })
	return s
}

// Len is the number of live sessions.
func (ss *Sessions) Len() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.live)
}

// RevokeAll ends every live session with ErrClosed and revokes their
// leases, concurrently, within the request timeout or ctx.
func (ss *Sessions) RevokeAll(ctx context.Context) {
	ss.mu.Lock()
	live := make([]*Session, 0, len(ss.live))
	for s := range ss.live {
		live = append(live, s)
	}
	ss.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, ss.RequestTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.cancel()
			s.end(errdefs.ErrClosed)
			_ = ss.Leases.Revoke(ctx, s.ID)
		}()
	}
	wg.Wait()
}

// Done is closed when the session ends; Err then says why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is nil while the session is live, then why it ended: ErrSessionExpired
// wrapping the cause when lost, context.Canceled after Close, ErrClosed when
// the member ended.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the session and revokes its lease, blocking until the revoke
// is committed or ctx ends. A lease already gone is no error.
func (s *Session) Close(ctx context.Context) error {
	s.cancel()
	s.end(context.Canceled)
	err := s.ss.Leases.Revoke(ctx, s.ID)
	if errors.Is(err, errdefs.ErrLeaseNotFound) {
		return nil
	}
	return err
}

// end records why the session ended, the first time.
func (s *Session) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		close(s.done)
	}
	s.mu.Unlock()
	s.ss.mu.Lock()
	delete(s.ss.live, s)
	s.ss.mu.Unlock()
}

// keepAlive renews the lease until ctx ends (Close), the member ends, or
// the lease is lost: gone, or not renewed for a whole TTL.
func (s *Session) keepAlive(ctx context.Context) {
	ss := s.ss
	lastOK := time.Now()
	err := KeepAlive(ctx, ss.Member.Done(), s.TTL, func(rctx context.Context) error {
		// Renewed with a deadline inside the TTL the server side still grants.
		sent := time.Now()
		_, _, err := ss.Leases.KeepAlive(rctx, s.ID)
		if err == nil {
			lastOK = sent
		}
		return err
	}, func(err error) bool {
		return errors.Is(err, errdefs.ErrLeaseNotFound) || errors.Is(err, errdefs.ErrClosed) || ctx.Err() != nil ||
			time.Since(lastOK) >= s.TTL
	})
	switch {
	case errors.Is(err, errdefs.ErrLeaseNotFound):
		s.end(fmt.Errorf("%w: lease %d: %w", errdefs.ErrSessionExpired, s.ID, errdefs.ErrLeaseNotFound))
	case errors.Is(err, errdefs.ErrClosed):
		s.end(errdefs.ErrClosed)
	case ctx.Err() != nil: // Close
	default:
		s.end(fmt.Errorf("%w: lease %d not renewed for %v: %w", errdefs.ErrSessionExpired, s.ID, s.TTL, err))
		// The cluster may still count the lease: a new leader restarts
		// every countdown, so after an outage longer than the TTL it
		// lives a TTL more. Revoke it, so that its keys and locks go as
		// soon as the cluster can commit, within RequestTimeout.
		rctx, cancel := context.WithTimeout(ss.Member, ss.RequestTimeout)
		if err := ss.Leases.Revoke(rctx, s.ID); err != nil && !errors.Is(err, errdefs.ErrLeaseNotFound) {
			ss.Logger.Debug("revoking a lost session's lease failed; it expires on its own", "lease", s.ID, "err", err)
		}
		cancel()
	}
}
