package coord

import (
	"context"
	"fmt"
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
	n *Node
	s *lease.Session
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
	return &Session{n: n, s: n.m.Sessions.Start(int64(g.ID), c.ttl)}, nil
}

// Node returns the Node the session lives on.
func (s *Session) Node() *Node { return s.n }

// Lease returns the session's lease.
func (s *Session) Lease() LeaseID { return LeaseID(s.s.ID) }

// TTL returns the session's lease TTL.
func (s *Session) TTL() time.Duration { return s.s.TTL }

// Done is closed when the session ends: closed by Close, lost (its lease
// expired or was revoked, or could not be renewed within its TTL), or its
// Node closed (Close revokes the lease first). Err says which. A session
// that could not renew its lease within the TTL then revokes it in the
// background, trying for up to Config.RequestTimeout.
func (s *Session) Done() <-chan struct{} { return s.s.Done() }

// Err returns nil while the session is live, then why it ended:
// ErrSessionExpired (wrapping the cause) when lost, context.Canceled after
// Close, ErrClosed when the Node closed.
func (s *Session) Err() error { return s.s.Err() }

// Close ends the session and revokes its lease, so its keys and locks are
// released at once. It blocks until the revoke is committed or ctx ends;
// it is idempotent. Errors: those of Revoke (ErrLeaseNotFound is not
// reported: the lease is gone either way).
func (s *Session) Close(ctx context.Context) error { return s.s.Close(ctx) }
