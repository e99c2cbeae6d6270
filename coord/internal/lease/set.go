package lease

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Replica is what a Set needs of a shard replica (a raftnode.Shard).
type Replica interface {
	// Read returns the replica's state, after a linearizable read unless
	// serializable.
	Read(ctx context.Context, serializable bool) (*sm.View, error)
	// View returns the replica's latest state, with no network.
	View() *sm.View
	// Propose commits a command and returns its result.
	Propose(ctx context.Context, cmd *sm.Command) (*sm.Result, error)
}

// Set is the leases of a cluster, as one member serves them: a lease lives
// in its home shard (Home, from its ID) and is materialised in another
// shard the first time a key there is attached to it, with the same TTL.
// Keep-alives and revokes go to every shard holding it; each shard expires
// its copy on its own, so with several shards the keys of one lease are
// deleted atomically per shard, not across shards. The calls block like
// the shards' Read and Propose, and fail like them; a lease that does not
// exist is ErrLeaseNotFound.
type Set struct {
	Shards  []Replica
	Keepers []*Keeper // by shard
}

// Home is the index of lease id's home shard.
func (ls Set) Home(id int64) int { return int(uint64(id) % uint64(len(ls.Shards))) }

// newID returns a random positive lease ID.
func newID() int64 {
	u := uuid.New()
	if id := int64(binary.BigEndian.Uint64(u[:8]) >> 1); id != 0 {
		return id
	}
	return 1
}

// Grant creates a lease of ttl milliseconds under a new random ID, and
// returns it with its home shard and the revision after the grant.
func (ls Set) Grant(ctx context.Context, ttl int64) (id int64, home int, rev int64, err error) {
	for {
		id = newID()
		home = ls.Home(id)
		res, err := ls.Shards[home].Propose(ctx, &sm.Command{Kind: sm.CmdGrant, LeaseID: id, TTL: ttl})
		if err != nil {
			return 0, 0, 0, err
		}
		if res.Code == sm.CodeLeaseExists {
			continue // a 63-bit random collision: draw again
		}
		if err := res.Code.Err(); err != nil {
			return 0, 0, 0, err
		}
		return id, home, res.Revision, nil
	}
}

// Revoke ends lease id in its home shard, then in every other shard (not
// only those this replica has seen it in, since a copy may be
// materialised but not applied here). An error from another shard than
// home is returned after all were tried.
func (ls Set) Revoke(ctx context.Context, id int64) error {
	home := ls.Home(id)
	res, err := ls.Shards[home].Propose(ctx, &sm.Command{Kind: sm.CmdRevoke, LeaseID: id})
	if err != nil {
		return err
	}
	if err := res.Code.Err(); err != nil {
		return fmt.Errorf("%w: %d", err, id)
	}
	var errs []error
	for i, s := range ls.Shards {
		if i == home {
			continue
		}
		res, err := s.Propose(ctx, &sm.Command{Kind: sm.CmdRevoke, LeaseID: id})
		if err != nil {
			errs = append(errs, err)
		} else if res.Code != sm.CodeOK && res.Code != sm.CodeLeaseNotFound {
			errs = append(errs, res.Code.Err())
		}
	}
	return errors.Join(errs...)
}

// KeepAlive renews lease id once, in its home shard and in every other
// shard whose replica here holds it, and returns the home shard and its
// result (the TTL granted, the revision).
func (ls Set) KeepAlive(ctx context.Context, id int64) (home int, res *sm.Result, err error) {
	home = ls.Home(id)
	res, err = ls.Shards[home].Propose(ctx, &sm.Command{Kind: sm.CmdKeepAlive, LeaseID: id})
	if err != nil {
		return 0, nil, err
	}
	if err := res.Code.Err(); err != nil {
		return 0, nil, fmt.Errorf("%w: %d", err, id)
	}
	for i, s := range ls.Shards {
		if _, ok := s.View().Lease(id); !ok || i == home {
			continue
		}
		if _, err := s.Propose(ctx, &sm.Command{Kind: sm.CmdKeepAlive, LeaseID: id}); err != nil {
			return 0, nil, err
		}
	}
	return home, res, nil
}

// TTL describes one lease.
type TTL struct {
	Home      int   // its home shard
	Revision  int64 // the home shard's revision when read
	Granted   time.Duration
	Remaining time.Duration // as this member counts it (Keeper.Remaining)
	Keys      []string      // with keys, the keys attached in every shard, sorted
}

// TimeToLive reads lease id (linearizably), and with keys the keys
// attached to it in every shard.
func (ls Set) TimeToLive(ctx context.Context, id int64, keys bool) (*TTL, error) {
	home := ls.Home(id)
	v, err := ls.Shards[home].Read(ctx, false)
	if err != nil {
		return nil, err
	}
	l, ok := v.Lease(id)
	if !ok {
		return nil, fmt.Errorf("%w: %d", errdefs.ErrLeaseNotFound, id)
	}
	t := &TTL{Home: home, Revision: v.Revision(), Granted: time.Duration(l.TTL) * time.Millisecond,
		Remaining: ls.Keepers[home].Remaining(id, l.TTL)}
	if !keys {
		return t, nil
	}
	t.Keys = append(t.Keys, v.LeaseKeys(id)...)
	for i, s := range ls.Shards {
		if i == home {
			continue
		}
		sv, err := s.Read(ctx, false)
		if err != nil {
			return nil, err
		}
		t.Keys = append(t.Keys, sv.LeaseKeys(id)...)
	}
	sort.Strings(t.Keys)
	return t, nil
}

// List returns every lease of the cluster, read linearizably from its home
// shard, by ID.
func (ls Set) List(ctx context.Context) ([]sm.LeaseInfo, error) {
	var out []sm.LeaseInfo
	for i, s := range ls.Shards {
		v, err := s.Read(ctx, false)
		if err != nil {
			return nil, err
		}
		for _, l := range v.Leases() {
			if ls.Home(l.ID) == i {
				out = append(out, l)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Resolve prepares a put with a lease for shard: when the lease lives in
// another shard, it reads the lease there (linearizably) so that the put
// materialises it with the same TTL.
func (ls Set) Resolve(ctx context.Context, shard int, op *sm.Op) error {
	home := ls.Home(op.Lease)
	if home == shard {
		return nil
	}
	v, err := ls.Shards[home].Read(ctx, false)
	if err != nil {
		return err
	}
	l, ok := v.Lease(op.Lease)
	if !ok {
		return fmt.Errorf("%w: %d", errdefs.ErrLeaseNotFound, op.Lease)
	}
	op.LeaseTTL = l.TTL
	return nil
}
