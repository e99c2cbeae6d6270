package election

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// Observation is one state of an election: who leads, with which value, as
// of a revision. Leader is nil when nobody leads.
type Observation struct {
	Leader   *Leader
	Revision coord.Revision
}

// Observe streams the election's leadership from its current state on:
// first the current leader (or none), then every change: a new leader, a new
// value (Proclaim), and nil when the leader resigns or dies with nobody
// queued. Changes are delivered in order, each revision once; consecutive
// states that are equal are not repeated. The channel closes when ctx ends
// or the Node closes. It reads from this member's replica and does not
// block the caller.
func (e *Election) Observe(ctx context.Context) <-chan Observation {
	out := make(chan Observation, 16)
	go e.observe(ctx, out)
	return out
}

type candidate struct {
	key    string
	value  []byte
	create coord.Revision
	lease  coord.LeaseID
}

func (e *Election) observe(ctx context.Context, out chan<- Observation) {
	defer close(out)
	n := e.n
	var last *Leader
	first := true
	emit := func(q map[string]*candidate, rev coord.Revision) bool {
		var cur *Leader
		var best *candidate
		for _, c := range q {
			if best == nil || c.create < best.create {
				best = c
			}
		}
		if best != nil {
			cur = &Leader{Key: best.key, Value: best.value, Fence: best.create, Lease: best.lease}
		}
		if !first && sameLeader(last, cur) {
			return true
		}
		first, last = false, cur
		select {
		case out <- Observation{Leader: cur, Revision: rev}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		// Load the queue, then follow it revision by revision.
		g, err := n.Get(ctx, e.dir, coord.WithPrefix())
		if err != nil {
			if errors.Is(err, coord.ErrClosed) {
				return
			}
			select { // no quorum right now: retry shortly
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return
			}
			continue
		}
		q := map[string]*candidate{}
		for _, kv := range g.KVs {
			q[kv.Key] = &candidate{key: kv.Key, value: kv.Value, create: kv.CreateRevision, lease: kv.Lease}
		}
		if !emit(q, g.Header.Revision) {
			return
		}
		if !e.follow(ctx, q, g.Header.Revision, emit) {
			return
		}
	}
}

// follow applies watch events to q and emits after every revision; false
// when observation must end, true to reload after a compaction.
func (e *Election) follow(ctx context.Context, q map[string]*candidate, rev coord.Revision,
	emit func(map[string]*candidate, coord.Revision) bool) bool {
	w := e.n.Watch(ctx, e.dir, coord.WithPrefix(), coord.WithRev(rev+1))
	for r := range w {
		if err := r.Err(); err != nil {
			return errors.Is(err, coord.ErrCompacted)
		}
		evs := r.Events
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].KV.ModRevision < evs[j].KV.ModRevision })
		for i, ev := range evs {
			if ev.Type == coord.EventDelete {
				delete(q, ev.KV.Key)
			} else {
				q[ev.KV.Key] = &candidate{key: ev.KV.Key, value: ev.KV.Value, create: ev.KV.CreateRevision, lease: ev.KV.Lease}
			}
			if i == len(evs)-1 || evs[i+1].KV.ModRevision != ev.KV.ModRevision {
				if !emit(q, ev.KV.ModRevision) {
					return false
				}
			}
		}
	}
	return false
}

func sameLeader(a, b *Leader) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Key == b.Key && string(a.Value) == string(b.Value)
}
