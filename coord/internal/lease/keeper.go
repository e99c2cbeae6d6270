// Package lease keeps coordkit's leases: the Keeper of each shard replica
// tracks every lease's deadline and, while the replica leads the shard,
// proposes the expiry of the leases past theirs; KeepAlive is the renewal
// loop that Sessions and Node.KeepAlive share; Sessions keep a member's
// sessions alive and revoke them when it shuts down.
//
// How expiry works. Every replica of a shard tracks, for each lease, a
// deadline: the moment it applied the lease's grant or last keep-alive,
// plus the TTL. Apply happens after the client sent the request, so no
// replica's deadline is ever earlier than the one the client can count on;
// a replica that restarted tracks from the time it replayed the renewal,
// which only extends. Only the shard's leader acts on deadlines: once it has
// applied everything committed before its term (a ReadIndex round), it
// restarts every lease's countdown at its full TTL, as etcd's lessor does
// on promotion, and from then on proposes an expiry for each lease past its
// deadline, guarded by the Raft index of the lease's last renewal so that a
// keep-alive committed first wins. The restart is what keeps an election
// from expiring leases: while a shard has no leader no keep-alive can
// commit, and a lease whose holder is alive would otherwise be lost to an
// election slower than the time its holder had left. The price is that a
// lease whose holder is gone lives up to one TTL longer after each change
// of leader.
package lease

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Shard is what a Keeper needs of its shard replica (a raftnode.Shard).
type Shard interface {
	// Leader returns the shard's leader and term as this member knows them.
	Leader() (leader, term uint64, ok bool)
	// Read returns the replica's state after a linearizable read.
	Read(ctx context.Context, serializable bool) (*sm.View, error)
	// Propose commits a command and returns its result.
	Propose(ctx context.Context, cmd *sm.Command) (*sm.Result, error)
}

// Config is a Keeper's settings.
type Config struct {
	// Self is this member's replica ID: the keeper acts while it leads.
	Self uint64
	// Period is how often a leading keeper looks for expired leases.
	Period time.Duration
	// ElectionTimeout bounds the catch-up read of a new leader, and spaces
	// the proposals of one lease's expiry.
	ElectionTimeout time.Duration
	// RequestTimeout bounds an expiry's proposal.
	RequestTimeout time.Duration
	Logger         *slog.Logger
}

// idleCheck is how often a keeper that does not lead looks whether it
// does, besides being woken when it becomes leader: a safety net only.
const idleCheck = time.Second

// Keeper tracks lease deadlines for one shard replica and, while this
// replica leads the shard, expires leases. Its LeaseRenewed, LeaseGone and
// LeasesReset are the sm.Listener methods of the same names. Safe for
// concurrent use.
type Keeper struct {
	s   Shard
	cfg Config

	mu sync.Mutex
	dl map[int64]*deadline

	ready uint64 // the term in which this replica, as leader, caught up
	// restarted is the term in which this replica, as leader, restarted
	// every countdown: once per term, even if ready is lost and regained
	// (a failed leader lookup) within it.
	restarted uint64
	// wake is signalled when this replica becomes the shard's leader
	// (Leading), so that a keeper that does not lead sleeps.
	wake chan struct{}
}

type deadline struct {
	ttl      int64 // ms
	renew    uint64
	at       time.Time
	proposed time.Time // when an expiry was last proposed
}

// NewKeeper returns the keeper of shard replica s.
func NewKeeper(s Shard, cfg Config) *Keeper {
	return &Keeper{s: s, cfg: cfg, dl: map[int64]*deadline{}, wake: make(chan struct{}, 1)}
}

// Leading wakes the keeper: this replica became the shard's leader. It
// does not block.
func (k *Keeper) Leading() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// LeaseRenewed starts lease id's countdown of ttl ms, renewed at Raft
// index renew.
func (k *Keeper) LeaseRenewed(id, ttl int64, renew uint64) {
	k.mu.Lock()
	k.dl[id] = &deadline{ttl: ttl, renew: renew, at: time.Now().Add(time.Duration(ttl) * time.Millisecond)}
	k.mu.Unlock()
}

// LeaseGone forgets lease id.
func (k *Keeper) LeaseGone(id int64) {
	k.mu.Lock()
	delete(k.dl, id)
	k.mu.Unlock()
}

// LeasesReset replaces every countdown with a full one for each of leases.
func (k *Keeper) LeasesReset(leases []sm.LeaseInfo) {
	now := time.Now()
	k.mu.Lock()
	k.dl = make(map[int64]*deadline, len(leases))
	for _, l := range leases {
		k.dl[l.ID] = &deadline{ttl: l.TTL, renew: l.Renew, at: now.Add(time.Duration(l.TTL) * time.Millisecond)}
	}
	k.mu.Unlock()
}

// Remaining returns what is left of lease id's countdown on this replica;
// ttl (ms) when the replica has none for it.
func (k *Keeper) Remaining(id, ttl int64) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, ok := k.dl[id]
	if !ok {
		return time.Duration(ttl) * time.Millisecond
	}
	return max(time.Until(d.at), 0)
}

// Run expires leases while this replica leads the shard, until ctx ends.
// Every Period it proposes the expiry of the leases past their deadlines;
// it sleeps while the replica does not lead.
func (k *Keeper) Run(ctx context.Context) {
	// Only the leader has work, every period; the others sleep until
	// Leading says this replica leads (an idle observer or follower would
	// otherwise wake 10 times a second for nothing).
	t := time.NewTimer(k.cfg.Period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-k.wake:
		}
		leader, term, ok := k.s.Leader()
		if !ok || leader != k.cfg.Self {
			k.ready = 0
			t.Reset(idleCheck)
			continue
		}
		t.Reset(k.cfg.Period)
		if k.ready != term {
			// Apply everything committed before this term first, so the
			// deadlines reflect every keep-alive the old leader accepted.
			rctx, cancel := context.WithTimeout(ctx, k.cfg.ElectionTimeout)
			_, err := k.s.Read(rctx, false)
			cancel()
			if err != nil {
				continue
			}
			k.ready = term
			if k.restarted != term {
				k.restarted = term
				k.restartCountdowns(time.Now())
			}
		}
		k.expire(ctx, time.Now())
	}
}

// restartCountdowns moves every lease's deadline to a full TTL from now,
// unless it is later already.
func (k *Keeper) restartCountdowns(now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, d := range k.dl {
		if full := now.Add(time.Duration(d.ttl) * time.Millisecond); full.After(d.at) {
			d.at = full
		}
	}
}

// due returns the leases past their deadlines at now, by ID, each with the
// index of its last renewal, and notes that their expiry is proposed; a
// lease whose expiry was proposed within an election timeout is left out.
func (k *Keeper) due(now time.Time) []sm.ExpireItem {
	var items []sm.ExpireItem
	k.mu.Lock()
	for id, d := range k.dl {
		if now.After(d.at) && now.Sub(d.proposed) > k.cfg.ElectionTimeout {
			d.proposed = now
			items = append(items, sm.ExpireItem{ID: id, Renew: d.renew})
		}
	}
	k.mu.Unlock()
	sort.Slice(items, func(i, j int) bool { return items[i].ID < items[j].ID })
	return items
}

func (k *Keeper) expire(ctx context.Context, now time.Time) {
	items := k.due(now)
	if len(items) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, k.cfg.RequestTimeout)
	defer cancel()
	if _, err := k.s.Propose(ctx, &sm.Command{Kind: sm.CmdExpire, Expire: items}); err != nil && !errors.Is(err, errdefs.ErrClosed) {
		k.cfg.Logger.Debug("lease expiry not committed; will retry", "leases", len(items), "err", err)
	}
}

// KeepAlive renews a lease every third of ttl until ctx ends or done
// closes, or a renewal's error ends it: renew makes one renewal, bounded
// by a context of one period; after a failure (a leader change, most
// often) the next comes after a fifth of a period, while the lease still
// has slack. When renew's error satisfies stop, KeepAlive returns it; when
// done closes, it returns ErrClosed; when ctx ends, ctx's error.
func KeepAlive(ctx context.Context, done <-chan struct{}, ttl time.Duration, renew func(context.Context) error, stop func(error) bool) error {
	every := ttl / 3
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return errdefs.ErrClosed
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		err := renew(rctx)
		cancel()
		if err == nil {
			t.Reset(every)
			continue
		}
		if stop(err) {
			return err
		}
		t.Reset(every / 5)
	}
}
