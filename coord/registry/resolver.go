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
)

// Resolver keeps a local, watch-fed copy of a service's instances and picks
// among the passing ones that were not reported down. Safe for concurrent
// use.
type Resolver struct {
	reg     *Registry
	service string
	cancel  context.CancelFunc
	done    chan struct{}

	mu    sync.Mutex
	insts map[string]Instance
	down  map[string]time.Time
	rr    uint64
	rev   coord.Revision
	err   error
}

// NewResolver starts following service and returns once it holds the
// current set. ctx bounds only that first load; Close stops the resolver.
// Errors: those of Watch.
func (r *Registry) NewResolver(ctx context.Context, service string) (*Resolver, error) {
	wctx, cancel := context.WithCancel(context.Background())
	res := &Resolver{reg: r, service: service, cancel: cancel, done: make(chan struct{}),
		insts: map[string]Instance{}, down: map[string]time.Time{}}
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
			res.insts[e.Instance.ID] = e.Instance
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
			switch {
			case e.Err != nil:
				res.err = e.Err
			case e.Type == Removed:
				delete(res.insts, e.Instance.ID)
				res.rev = e.Revision
			default:
				res.insts[e.Instance.ID] = e.Instance
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
		res.mu.Unlock()
		events = res.reg.Watch(ctx, res.service)
	}
}

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
