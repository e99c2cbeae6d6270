package coord

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/coordkit/coordkit/coord/internal/lease"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// How lease expiry works: see coord/internal/lease.
//
// A lease lives in its home shard (derived from its ID) and is materialised
// in another shard the first time a key there is attached to it, with the
// same TTL. Keep-alives and revokes go to every shard holding it; each shard
// expires its copy on its own, so with several shards the keys of one lease
// are deleted atomically per shard, not across shards.

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

func (n *Node) leaseHome(id LeaseID) *shard { return n.shards[uint64(id)%uint64(len(n.shards))] }

func newLeaseID() LeaseID {
	u := uuid.New()
	id := LeaseID(binary.BigEndian.Uint64(u[:8]) >> 1)
	if id == 0 {
		id = 1
	}
	return id
}

func (n *Node) checkTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: %v is not positive", ErrInvalidTTL, ttl)
	}
	if min := n.cfg.minLeaseTTL(); ttl < min {
		return fmt.Errorf("%w: %v is below %v (twice the election timeout %v)", ErrInvalidTTL, ttl, min, n.cfg.ElectionTimeout)
	}
	if ttl%time.Millisecond != 0 {
		return fmt.Errorf("%w: %v is not a whole number of milliseconds", ErrInvalidTTL, ttl)
	}
	return nil
}

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
	for {
		id := newLeaseID()
		s := n.leaseHome(id)
		res, err := s.Propose(ctx, &sm.Command{Kind: sm.CmdGrant, LeaseID: int64(id), TTL: ttl.Milliseconds()})
		if err != nil {
			return nil, err
		}
		if res.Code == sm.CodeLeaseExists {
			continue // a 63-bit random collision: draw again
		}
		if err := codeErr(res.Code); err != nil {
			return nil, err
		}
		return &LeaseGrantResponse{Header: n.header(s, res.Revision), ID: id, TTL: ttl}, nil
	}
}

// holders returns the shards other than home whose local replica holds id.
func (n *Node) holders(id LeaseID, home *shard) []*shard {
	var out []*shard
	for _, s := range n.shards {
		if s == home {
			continue
		}
		if _, ok := s.View().Lease(int64(id)); ok {
			out = append(out, s)
		}
	}
	return out
}

// Revoke ends a lease at once and deletes its keys (in one revision per
// shard). Errors: ErrLeaseNotFound, plus those of Put.
func (n *Node) Revoke(ctx context.Context, id LeaseID) error {
	home := n.leaseHome(id)
	res, err := home.Propose(ctx, &sm.Command{Kind: sm.CmdRevoke, LeaseID: int64(id)})
	if err != nil {
		return err
	}
	if err := codeErr(res.Code); err != nil {
		return fmt.Errorf("%w: %d", err, id)
	}
	// Copies elsewhere: revoke every shard, not only those this replica has
	// seen the lease in, since a copy may be materialised but not applied here.
	var errs []error
	for _, s := range n.shards {
		if s == home {
			continue
		}
		res, err := s.Propose(ctx, &sm.Command{Kind: sm.CmdRevoke, LeaseID: int64(id)})
		if err != nil {
			errs = append(errs, err)
		} else if res.Code != sm.CodeOK && res.Code != sm.CodeLeaseNotFound {
			errs = append(errs, codeErr(res.Code))
		}
	}
	return errors.Join(errs...)
}

// KeepAliveOnce renews a lease once: its countdown restarts at the full TTL
// on every shard holding it. Keep-alives do not queue behind this member's
// writes: they have request clients of their own besides the writes'. Errors: ErrLeaseNotFound
// when the lease is gone (expired or revoked), plus those of Put.
func (n *Node) KeepAliveOnce(ctx context.Context, id LeaseID) (*LeaseKeepAliveResponse, error) {
	home := n.leaseHome(id)
	res, err := home.Propose(ctx, &sm.Command{Kind: sm.CmdKeepAlive, LeaseID: int64(id)})
	if err != nil {
		return nil, err
	}
	if err := codeErr(res.Code); err != nil {
		return nil, fmt.Errorf("%w: %d", err, id)
	}
	for _, s := range n.holders(id, home) {
		if _, err := s.Propose(ctx, &sm.Command{Kind: sm.CmdKeepAlive, LeaseID: int64(id)}); err != nil {
			return nil, err
		}
	}
	return &LeaseKeepAliveResponse{Header: n.header(home, res.Revision), ID: id, TTL: time.Duration(res.TTL) * time.Millisecond}, nil
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
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(out)
		lease.KeepAlive(ctx, n.host.Done(), first.TTL, func(ctx context.Context) error {
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
	}()
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
	o, err := buildOp(kindTTL, opts)
	if err != nil {
		return nil, err
	}
	home := n.leaseHome(id)
	v, err := home.Read(ctx, false)
	if err != nil {
		return nil, err
	}
	l, ok := v.Lease(int64(id))
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrLeaseNotFound, id)
	}
	resp := &LeaseTimeToLiveResponse{Header: n.header(home, v.Revision()), ID: id,
		GrantedTTL: time.Duration(l.TTL) * time.Millisecond, TTL: home.keeper.Remaining(int64(id), l.TTL)}
	if o.attachedKeys {
		resp.Keys = append(resp.Keys, v.LeaseKeys(int64(id))...)
		for _, s := range n.shards {
			if s == home {
				continue
			}
			sv, err := s.Read(ctx, false)
			if err != nil {
				return nil, err
			}
			resp.Keys = append(resp.Keys, sv.LeaseKeys(int64(id))...)
		}
		sort.Strings(resp.Keys)
	}
	return resp, nil
}

// Leases lists every lease in the cluster, by ID. Linearizable.
func (n *Node) Leases(ctx context.Context) ([]LeaseStatus, error) {
	var out []LeaseStatus
	for _, s := range n.shards {
		v, err := s.Read(ctx, false)
		if err != nil {
			return nil, err
		}
		for _, l := range v.Leases() {
			if n.leaseHome(LeaseID(l.ID)) == s {
				out = append(out, LeaseStatus{ID: LeaseID(l.ID), TTL: time.Duration(l.TTL) * time.Millisecond})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// resolveLease prepares a Put with a lease for shard s: when the lease lives
// in another shard, it reads the lease there (linearizably) so the put can
// materialise it here with the same TTL.
func (n *Node) resolveLease(ctx context.Context, s *shard, op *sm.Op) error {
	home := n.leaseHome(LeaseID(op.Lease))
	if home == s {
		return nil
	}
	v, err := home.Read(ctx, false)
	if err != nil {
		return err
	}
	l, ok := v.Lease(op.Lease)
	if !ok {
		return fmt.Errorf("%w: %d", ErrLeaseNotFound, op.Lease)
	}
	op.LeaseTTL = l.TTL
	return nil
}
