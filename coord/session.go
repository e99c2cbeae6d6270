package coord

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord/internal/lease"
)

// SessionOption configures NewSession.
type SessionOption func(*sessionConfig)

type sessionConfig struct {
	ttl time.Duration
	err error
}

// DefaultSessionTTL is a Session's TTL when WithTTL is not given (etcd's
// concurrency package uses the same).
const DefaultSessionTTL = 60 * time.Second

// WithTTL sets a Session's lease TTL: how long after its process dies (or
// is cut off) its keys and locks are released.
func WithTTL(ttl time.Duration) SessionOption {
	return func(c *sessionConfig) {
		if ttl <= 0 {
			c.err = fmt.Errorf("%w: WithTTL(%v)", ErrInvalidTTL, ttl)
		}
		c.ttl = ttl
	}
}

// Session is a lease kept alive in the background: the unit of liveness for
// locks, elections and registrations. Keys written with WithLease(s.Lease())
// live as long as the session. Safe for concurrent use.
type Session struct {
	n      *Node
	id     LeaseID
	ttl    time.Duration
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	err error
}

// NewSession grants a lease and keeps it alive until Close, the Node's
// Close, or its loss. ctx bounds only the grant. Errors: those of Grant.
func (n *Node) NewSession(ctx context.Context, opts ...SessionOption) (*Session, error) {
	c := sessionConfig{ttl: DefaultSessionTTL}
	for _, o := range opts {
		o(&c)
	}
	if c.err != nil {
		return nil, c.err
	}
	g, err := n.Grant(ctx, c.ttl)
	if err != nil {
		return nil, err
	}
	kctx, cancel := context.WithCancel(context.Background())
	s := &Session{n: n, id: g.ID, ttl: c.ttl, cancel: cancel, done: make(chan struct{})}
	n.sessMu.Lock()
	if n.sessions == nil {
		n.sessions = map[*Session]struct{}{}
	}
	n.sessions[s] = struct{}{}
	n.sessMu.Unlock()
	n.wg.Add(1)
	go s.keepAlive(kctx)
	return s, nil
}

// revokeSessions revokes every live session of the Node, concurrently,
// within the request timeout or ctx; used by Shutdown.
func (n *Node) revokeSessions(ctx context.Context) {
	n.sessMu.Lock()
	live := make([]*Session, 0, len(n.sessions))
	for s := range n.sessions {
		live = append(live, s)
	}
	n.sessMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.cancel()
			s.end(ErrClosed)
			_ = n.Revoke(ctx, s.id)
		}()
	}
	wg.Wait()
}

// Node returns the Node the session lives on.
func (s *Session) Node() *Node { return s.n }

// Lease returns the session's lease.
func (s *Session) Lease() LeaseID { return s.id }

// TTL returns the session's lease TTL.
func (s *Session) TTL() time.Duration { return s.ttl }

// Done is closed when the session ends: closed by Close, lost (its lease
// expired or was revoked, or could not be renewed within its TTL), or its
// Node closed (Close revokes the lease first). Err says which. A session
// that could not renew its lease within the TTL then revokes it in the
// background, trying for up to Config.RequestTimeout.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns nil while the session is live, then why it ended:
// ErrSessionExpired (wrapping the cause) when lost, context.Canceled after
// Close, ErrClosed when the Node closed.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Session) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		close(s.done)
	}
	s.mu.Unlock()
	s.n.sessMu.Lock()
	delete(s.n.sessions, s)
	s.n.sessMu.Unlock()
}

func (s *Session) keepAlive(ctx context.Context) {
	defer s.n.wg.Done()
	lastOK := time.Now()
	err := lease.KeepAlive(ctx, s.n.host.Done(), s.ttl, func(rctx context.Context) error {
		// Renewed with a deadline inside the TTL the server side still grants.
		sent := time.Now()
		_, err := s.n.KeepAliveOnce(rctx, s.id)
		if err == nil {
			lastOK = sent
		}
		return err
	}, func(err error) bool {
		return errors.Is(err, ErrLeaseNotFound) || errors.Is(err, ErrClosed) || ctx.Err() != nil ||
			time.Since(lastOK) >= s.ttl
	})
	switch {
	case errors.Is(err, ErrLeaseNotFound):
		s.end(fmt.Errorf("%w: lease %d: %w", ErrSessionExpired, s.id, ErrLeaseNotFound))
	case errors.Is(err, ErrClosed):
		s.end(ErrClosed)
	case ctx.Err() != nil: // Close
	default:
		s.end(fmt.Errorf("%w: lease %d not renewed for %v: %w", ErrSessionExpired, s.id, s.ttl, err))
		// The cluster may still count the lease: a new leader restarts
		// every countdown, so after an outage longer than the TTL it
		// lives a TTL more. Revoke it, so that its keys and locks go as
		// soon as the cluster can commit, within RequestTimeout.
		rctx, cancel := context.WithTimeout(s.n.host.Context(), s.n.cfg.RequestTimeout)
		if err := s.n.Revoke(rctx, s.id); err != nil && !errors.Is(err, ErrLeaseNotFound) {
			s.n.log.Debug("revoking a lost session's lease failed; it expires on its own", "lease", s.id, "err", err)
		}
		cancel()
	}
}

// Close ends the session and revokes its lease, so its keys and locks are
// released at once. It blocks until the revoke is committed or ctx ends;
// it is idempotent. Errors: those of Revoke (ErrLeaseNotFound is not
// reported: the lease is gone either way).
func (s *Session) Close(ctx context.Context) error {
	s.cancel()
	s.end(context.Canceled)
	err := s.n.Revoke(ctx, s.id)
	if errors.Is(err, ErrLeaseNotFound) {
		return nil
	}
	return err
}
