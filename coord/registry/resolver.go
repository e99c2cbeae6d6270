package registry

import (
	"context"
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// Strategy chooses among a service's usable instances.
type Strategy int

// Pick strategies.
const (
	// RoundRobin cycles through the instances in ID order.
	RoundRobin Strategy = iota
	// Random picks uniformly.
	Random
	// Weighted picks with probability proportional to Instance.Weight.
	Weighted
	// Sticky maps a key to the same instance while that instance stays
	// usable (rendezvous hashing: when one goes, only its keys move).
	Sticky
	// PreferZone cycles through the usable instances whose
	// Metadata["zone"] is the key given to Pick (the caller's zone), and
	// through all usable instances when none is in that zone.
	PreferZone
)

// Resolver keeps a local, watch-fed copy of a service's instances and picks
// among the passing ones that were not reported down. Safe for concurrent
// use.
type Resolver struct {
	reg     *Registry
	service string
	opts    lookup
	cancel  context.CancelFunc
	done    chan struct{}

	mu      sync.Mutex
	insts   map[string]Instance
	down    map[string]time.Time
	rr      uint64
	rev     coord.Revision
	err     error
	changed chan struct{} // closed at the next change
}

// NewResolver starts following service and returns once it holds the
// current set. ctx bounds only that first load; Close stops the resolver.
// Options: WithMetadata and Matching keep only the instances that match
// (PassingOnly and Local change nothing: a resolver picks passing
// instances and follows this member's replica). Errors: those of Watch.
func (r *Registry) NewResolver(ctx context.Context, service string, opts ...LookupOption) (*Resolver, error) {
	wctx, cancel := context.WithCancel(context.Background())
	res := &Resolver{reg: r, service: service, cancel: cancel, done: make(chan struct{}),
		insts: map[string]Instance{}, down: map[string]time.Time{}, changed: make(chan struct{})}
	for _, o := range opts {
		o(&res.opts)
	}
	events := r.Watch(wctx, service)
	for {
		select {
		case e, ok := <-events:
			if !ok || e.Err != nil {
				cancel()
				if e.Err == nil {
					e.Err = coord.ErrClosed
				}
				return nil, e.Err
			}
			if e.Type == Synced {
				res.rev = e.Revision
				go res.follow(wctx, events)
				return res, nil
			}
			res.apply(e)
		case <-ctx.Done():
			cancel()
			return nil, ctx.Err()
		}
	}
}

func (res *Resolver) follow(ctx context.Context, events <-chan Event) {
	defer close(res.done)
	for {
		for e := range events {
			res.mu.Lock()
			if e.Err != nil {
				res.err = e.Err
			} else {
				res.apply(e)
				res.rev = e.Revision
			}
			res.mu.Unlock()
		}
		res.mu.Lock()
		err := res.err
		res.mu.Unlock()
		if ctx.Err() != nil || errors.Is(err, coord.ErrClosed) || err == nil {
			return
		}
		// Compacted past: reload the whole set.
		res.mu.Lock()
		res.err = nil
		res.insts = map[string]Instance{}
		res.notify()
		res.mu.Unlock()
		events = res.reg.Watch(ctx, res.service)
	}
}

// apply applies one event to the set, with res.mu held (or before the
// resolver is shared): an instance that stops matching the filters leaves
// it.
func (res *Resolver) apply(e Event) {
	if e.Type == Synced {
		return
	}
	if e.Type == Removed || !res.opts.keep(e.Instance) {
		if _, ok := res.insts[e.Instance.ID]; !ok {
			return
		}
		delete(res.insts, e.Instance.ID)
	} else {
		res.insts[e.Instance.ID] = e.Instance
	}
	res.notify()
}

// notify wakes the waiters of Changed, with res.mu held.
func (res *Resolver) notify() {
	close(res.changed)
	res.changed = make(chan struct{})
}

// Changed returns a channel that is closed at the next change of the
// instances the resolver holds (an addition, an update, a removal). Take
// it before reading Instances, so that no change falls in between:
//
//	for {
//		ch := res.Changed()
//		use(res.Instances())
//		<-ch
//	}
func (res *Resolver) Changed() <-chan struct{} {
	res.mu.Lock()
	defer res.mu.Unlock()
	return res.changed
}

// Done is closed when the resolver stops following: Close, or its Node
// closed (Err then says so).
func (res *Resolver) Done() <-chan struct{} { return res.done }

// Close stops following the service. Idempotent.
func (res *Resolver) Close() {
	res.cancel()
	<-res.done
}

// Err reports why the resolver stopped following (its Node closed), or nil.
func (res *Resolver) Err() error {
	res.mu.Lock()
	defer res.mu.Unlock()
	return res.err
}

// Instances returns the known instances, passing or not, in ID order.
func (res *Resolver) Instances() []Instance {
	res.mu.Lock()
	defer res.mu.Unlock()
	out := make([]Instance, 0, len(res.insts))
	for _, in := range res.insts {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ReportDown excludes an instance from picks for d, as after a failed call
// (Curator's down-instance policy). A later report extends it.
func (res *Resolver) ReportDown(id string, d time.Duration) {
	res.mu.Lock()
	res.down[id] = time.Now().Add(d)
	res.mu.Unlock()
}

// usable returns the passing instances not reported down, in ID order.
func (res *Resolver) usable() []Instance {
	now := time.Now()
	var out []Instance
	for id, in := range res.insts {
		if in.Status != Passing {
			continue
		}
		if until, ok := res.down[id]; ok {
			if now.Before(until) {
				continue
			}
			delete(res.down, id)
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Pick chooses an instance with the strategy; key is used by Sticky only.
// ErrNoInstance when none is usable.
func (res *Resolver) Pick(s Strategy, key string) (Instance, error) {
	res.mu.Lock()
	defer res.mu.Unlock()
	u := res.usable()
	if len(u) == 0 {
		return Instance{}, ErrNoInstance
	}
	switch s {
	case Random:
		return u[rand.IntN(len(u))], nil
	case Weighted:
		total := 0
		for _, in := range u {
			total += weight(in)
		}
		x := rand.IntN(total)
		for _, in := range u {
			if x -= weight(in); x < 0 {
				return in, nil
			}
		}
		return u[len(u)-1], nil
	case PreferZone:
		var local []Instance
		for _, in := range u {
			if in.Metadata["zone"] == key {
				local = append(local, in)
			}
		}
		if len(local) > 0 {
			u = local
		}
		in := u[res.rr%uint64(len(u))]
		res.rr++
		return in, nil
	case Sticky:
		var best Instance
		var bestScore uint64
		for _, in := range u {
			h := fnv.New64a()
			h.Write([]byte(key))
			h.Write([]byte{0})
			h.Write([]byte(in.ID))
			if sc := h.Sum64(); sc >= bestScore {
				best, bestScore = in, sc
			}
		}
		return best, nil
	default:
		in := u[res.rr%uint64(len(u))]
		res.rr++
		return in, nil
	}
}

func weight(in Instance) int {
	if in.Weight <= 0 {
		return 1
	}
	return in.Weight
}
