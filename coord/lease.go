package coord

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// How lease expiry works. Every replica of a shard tracks, for each lease, a
// deadline: the moment it applied the lease's grant or last keep-alive, plus
// the TTL. Apply happens after the client sent the request, so no replica's
// deadline is ever earlier than the one the client can count on; a replica
// that restarted tracks from the time it replayed the renewal, which only
// extends. Only the shard's leader acts on deadlines: once it has applied
// everything committed before its term (a ReadIndex round), it restarts
// every lease's countdown at its full TTL, as etcd's lessor does on
// promotion, and from then on proposes an expiry for each lease past its
// deadline, guarded by the Raft index of the lease's last renewal so that a
// keep-alive committed first wins. The restart is what keeps an election
// from expiring leases: while a shard has no leader no keep-alive can
// commit, and a lease whose holder is alive would otherwise be lost to an
// election slower than the time its holder had left. The price is that a
// lease whose holder is gone lives up to one TTL longer after each change of
// leader.
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
		every := first.TTL / 3
		t := time.NewTimer(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-n.host.Done():
				return
			case <-t.C:
			}
			cctx, cancel := context.WithTimeout(ctx, every)
			r, err := n.KeepAliveOnce(cctx, id)
			cancel()
			if errors.Is(err, ErrLeaseNotFound) || errors.Is(err, ErrClosed) {
				return
			}
			if err != nil {
				// A leader change: try again soon rather than a period
				// later, while the lease still has slack.
				t.Reset(every / 5)
				continue
			}
			t.Reset(every)
			select {
			case out <- r:
			default:
			}
		}
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
		GrantedTTL: time.Duration(l.TTL) * time.Millisecond, TTL: home.keeper.remaining(int64(id), l.TTL)}
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

// keeper tracks lease deadlines for one shard replica and, while this
// replica leads the shard, expires leases and compacts history.
type keeper struct {
	s     *shard
	mu    sync.Mutex
	dl    map[int64]*leaseDeadline
	ready uint64 // the term in which this replica, as leader, caught up
	// restarted is the term in which this replica, as leader, restarted
	// every countdown: once per term, even if ready is lost and regained
	// (a failed leader lookup) within it.
	restarted uint64
	// wake is signalled when this replica becomes the shard's leader
	// (leaderListener), so that a keeper that does not lead sleeps.
	wake chan struct{}
}

// keeperIdleCheck is how often a keeper that does not lead looks whether it
// does, besides being woken when it becomes leader: a safety net only.
const keeperIdleCheck = time.Second

type leaseDeadline struct {
	ttl      int64 // ms
	renew    uint64
	deadline time.Time
	proposed time.Time // when an expiry was last proposed
}

func newKeeper(s *shard) *keeper {
	return &keeper{s: s, dl: map[int64]*leaseDeadline{}, wake: make(chan struct{}, 1)}
}

// leading wakes the keeper: this replica became the shard's leader.
func (k *keeper) leading() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// LeaseRenewed implements sm.Listener.
func (s *shard) LeaseRenewed(id, ttl int64, renew uint64) {
	k := s.keeper
	k.mu.Lock()
	k.dl[id] = &leaseDeadline{ttl: ttl, renew: renew, deadline: time.Now().Add(time.Duration(ttl) * time.Millisecond)}
	k.mu.Unlock()
}

// LeaseGone implements sm.Listener.
func (s *shard) LeaseGone(id int64) {
	k := s.keeper
	k.mu.Lock()
	delete(k.dl, id)
	k.mu.Unlock()
}

// LeasesReset implements sm.Listener.
func (s *shard) LeasesReset(leases []sm.LeaseInfo) {
	k := s.keeper
	now := time.Now()
	k.mu.Lock()
	k.dl = make(map[int64]*leaseDeadline, len(leases))
	for _, l := range leases {
		k.dl[l.ID] = &leaseDeadline{ttl: l.TTL, renew: l.Renew, deadline: now.Add(time.Duration(l.TTL) * time.Millisecond)}
	}
	k.mu.Unlock()
}

func (k *keeper) remaining(id, ttl int64) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, ok := k.dl[id]
	if !ok {
		return time.Duration(ttl) * time.Millisecond
	}
	return max(time.Until(d.deadline), 0)
}

func (k *keeper) run() {
	n := k.s.n
	defer n.wg.Done()
	period := min(n.cfg.HeartbeatInterval, 100*time.Millisecond)
	// Only the leader has work, every period; the others sleep until
	// leaderListener says this replica leads (an idle observer or follower
	// would otherwise wake 10 times a second for nothing).
	t := time.NewTimer(period)
	defer t.Stop()
	lastCompact := time.Now()
	for {
		select {
		case <-n.host.Done():
			return
		case <-t.C:
		case <-k.wake:
		}
		leader, term, ok := k.s.Leader()
		if !ok || leader != n.host.ReplicaID() {
			k.ready = 0
			t.Reset(keeperIdleCheck)
			continue
		}
		t.Reset(period)
		if k.ready != term {
			// Apply everything committed before this term first, so the
			// deadlines reflect every keep-alive the old leader accepted.
			ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ElectionTimeout)
			_, err := k.s.Read(ctx, false)
			cancel()
			if err != nil {
				continue
			}
			k.ready = term
			if k.restarted != term {
				k.restarted = term
				k.restartCountdowns()
			}
		}
		k.expire()
		if time.Since(lastCompact) >= 5*time.Second {
			lastCompact = time.Now()
			k.autoCompact()
		}
	}
}

// restartCountdowns moves every lease's deadline to a full TTL from now,
// unless it is later already.
func (k *keeper) restartCountdowns() {
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, d := range k.dl {
		if full := now.Add(time.Duration(d.ttl) * time.Millisecond); full.After(d.deadline) {
			d.deadline = full
		}
	}
}

func (k *keeper) expire() {
	n := k.s.n
	now := time.Now()
	var items []sm.ExpireItem
	k.mu.Lock()
	for id, d := range k.dl {
		if now.After(d.deadline) && now.Sub(d.proposed) > n.cfg.ElectionTimeout {
			d.proposed = now
			items = append(items, sm.ExpireItem{ID: id, Renew: d.renew})
		}
	}
	k.mu.Unlock()
	if len(items) == 0 {
		return
	}
	sort.Slice(items, func(i, j int) bool { return items[i].ID < items[j].ID })
	ctx, cancel := context.WithTimeout(n.host.Context(), n.cfg.RequestTimeout)
	defer cancel()
	if _, err := k.s.Propose(ctx, &sm.Command{Kind: sm.CmdExpire, Expire: items}); err != nil && !errors.Is(err, ErrClosed) {
		n.log.Debug("lease expiry not committed; will retry", "shard", k.s.Index, "leases", len(items), "err", err)
	}
}

func (k *keeper) autoCompact() {
	n := k.s.n
	keep := n.cfg.HistoryRetention
	if keep < 0 {
		return
	}
	v := k.s.View()
	if v.Revision()-v.CompactRevision() <= keep+keep/10 {
		return
	}
	ctx, cancel := context.WithTimeout(n.host.Context(), n.cfg.RequestTimeout)
	defer cancel()
	if _, err := k.s.Propose(ctx, &sm.Command{Kind: sm.CmdCompact, Revision: v.Revision() - keep}); err != nil && !errors.Is(err, ErrClosed) {
		n.log.Debug("history compaction not committed", "shard", k.s.Index, "err", err)
	}
}
