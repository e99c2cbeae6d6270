package coord

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coordkit/coordkit/coord/internal/lease"
	"github.com/coordkit/coordkit/coord/internal/request"
)

// How leases expire, and how they live in several shards: see
// coord/internal/lease.

// LeaseGrantResponse is the result of Grant.
type LeaseGrantResponse struct {
	Header Header
	ID     LeaseID
	TTL    time.Duration
}

// LeaseKeepAliveResponse is the result of one keep-alive.
type LeaseKeepAliveResponse struct {
	Header Header
	ID     LeaseID
	TTL    time.Duration
}

// LeaseTimeToLiveResponse is the result of TimeToLive.
type LeaseTimeToLiveResponse struct {
	Header     Header
	ID         LeaseID
	TTL        time.Duration // remaining, as this member counts it (see TimeToLive)
	GrantedTTL time.Duration
	Keys       []string // with WithAttachedKeys, in every shard
}

// LeaseStatus is one lease in Leases.
type LeaseStatus struct {
	ID  LeaseID
	TTL time.Duration // granted TTL
}

func (n *Node) checkTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: %v is not positive", ErrInvalidTTL, ttl)
	}
	if min := n.m.Cfg.MinLeaseTTL(); ttl < min {
		return fmt.Errorf("%w: %v is below %v (twice the election timeout %v)", ErrInvalidTTL, ttl, min, n.m.Cfg.ElectionTimeout)
	}
	if ttl%time.Millisecond != 0 {
		return fmt.Errorf("%w: %v is not a whole number of milliseconds", ErrInvalidTTL, ttl)
	}
	return nil
}

// MinLeaseTTL is the shortest TTL Grant accepts: twice
// Config.ElectionTimeout, so that a keep-alive can commit across an
// election.
func (n *Node) MinLeaseTTL() time.Duration { return n.m.Cfg.MinLeaseTTL() }

// Grant creates a lease with the given TTL. Keys attached to it (WithLease)
// are deleted, and their watchers see the deletes, when the lease expires or
// is revoked. The lease expires unless kept alive (KeepAlive, KeepAliveOnce,
// or a Session) within each TTL. A change of its shard's leader restarts the
// countdown at the full TTL, so an election alone never expires a lease.
//
// TTLs are whole milliseconds, at least twice Config.ElectionTimeout (so a
// keep-alive can commit across an election); ErrInvalidTTL otherwise.
// Blocking and other errors as for Put.
func (n *Node) Grant(ctx context.Context, ttl time.Duration) (*LeaseGrantResponse, error) {
	if err := n.checkTTL(ttl); err != nil {
		return nil, err
	}
	id, home, rev, err := n.m.Leases.Grant(ctx, ttl.Milliseconds())
	if err != nil {
		return nil, err
	}
	return &LeaseGrantResponse{Header: n.header(n.m.Shards[home], rev), ID: LeaseID(id), TTL: ttl}, nil
}

// Revoke ends a lease at once and deletes its keys (in one revision per
// shard). Errors: ErrLeaseNotFound, plus those of Put.
func (n *Node) Revoke(ctx context.Context, id LeaseID) error {
	return n.m.Leases.Revoke(ctx, int64(id))
}

// KeepAliveOnce renews a lease once: its countdown restarts at the full TTL
// on every shard holding it. Keep-alives do not queue behind this member's
// writes: they have request clients of their own besides the writes'. Errors: ErrLeaseNotFound
// when the lease is gone (expired or revoked), plus those of Put.
func (n *Node) KeepAliveOnce(ctx context.Context, id LeaseID) (*LeaseKeepAliveResponse, error) {
	home, res, err := n.m.Leases.KeepAlive(ctx, int64(id))
	if err != nil {
		return nil, err
	}
	return &LeaseKeepAliveResponse{Header: n.header(n.m.Shards[home], res.Revision), ID: id, TTL: time.Duration(res.TTL) * time.Millisecond}, nil
}

// KeepAlive keeps a lease alive until ctx ends: it renews it once at once
// (returning that error, if any), then every third of its TTL in the
// background, sending each renewal's response on the returned channel (a
// response is dropped if the reader is behind; renewals go on). The channel
// closes when ctx ends, the Node closes, or the lease is found gone. It does
// not revoke the lease when it stops.
func (n *Node) KeepAlive(ctx context.Context, id LeaseID) (<-chan *LeaseKeepAliveResponse, error) {
	first, err := n.KeepAliveOnce(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make(chan *LeaseKeepAliveResponse, 1)
	out <- first
	n.m.Go(func() {
		defer close(out)
		lease.KeepAlive(ctx, n.m.Host.Done(), first.TTL, func(ctx context.Context) error {
			r, err := n.KeepAliveOnce(ctx, id)
			if err == nil {
				select {
				case out <- r:
				default:
				}
			}
			return err
		}, func(err error) bool {
			return errors.Is(err, ErrLeaseNotFound) || errors.Is(err, ErrClosed) || ctx.Err() != nil
		})
	})
	return out, nil
}

// TimeToLive reports a lease's granted and remaining TTL, and with
// WithAttachedKeys the keys attached to it in every shard. Linearizable.
// Errors: ErrLeaseNotFound, plus those of Get.
//
// The remaining TTL is this member's count: from when it applied the last
// renewal. The shard leader's count decides expiry; it starts later on a
// member that applied the renewal later, and is restarted at the full TTL
// when the leader changes, so on other members the figure can be somewhat
// longer or shorter than the time the lease has left.
func (n *Node) TimeToLive(ctx context.Context, id LeaseID, opts ...OpOption) (*LeaseTimeToLiveResponse, error) {
	o, err := request.Build(request.TTL, opts)
	if err != nil {
		return nil, err
	}
	t, err := n.m.Leases.TimeToLive(ctx, int64(id), o.AttachedKeys)
	if err != nil {
		return nil, err
	}
	return &LeaseTimeToLiveResponse{Header: n.header(n.m.Shards[t.Home], t.Revision), ID: id,
		GrantedTTL: t.Granted, TTL: t.Remaining, Keys: t.Keys}, nil
}

// Leases lists every lease in the cluster, by ID. Linearizable.
func (n *Node) Leases(ctx context.Context) ([]LeaseStatus, error) {
	ls, err := n.m.Leases.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]LeaseStatus, len(ls))
	for i, l := range ls {
		out[i] = LeaseStatus{ID: LeaseID(l.ID), TTL: time.Duration(l.TTL) * time.Millisecond}
	}
	return out, nil
}
