package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/internal/hooks"
)

// refEvent is one change in the committed history.
type refEvent struct {
	rev    int64
	key    string
	delete bool
	value  string
}

func toRef(e coord.Event) refEvent {
	return refEvent{rev: int64(e.KV.ModRevision), key: e.KV.Key, delete: e.Type == coord.EventDelete, value: string(e.KV.Value)}
}

// history is the committed history, read back after the run.
type history struct {
	events []refEvent
	final  int64
	// compacted is the oldest revision readable at the end: 1, or the
	// revision the run compacted to, the events before which were read back
	// before the compaction (see compactions).
	compacted int64
	byKey     map[string][]refEvent
	perRev    map[int64]int
}

// stateAt returns a key's value at revision rev.
func (h *history) stateAt(key string, rev int64) (found bool, value string, modRev int64) {
	evs := h.byKey[key]
	i := sort.Search(len(evs), func(i int) bool { return evs[i].rev > rev }) - 1
	if i < 0 || evs[i].delete {
		return false, "", 0
	}
	return true, evs[i].value, evs[i].rev
}

// settle ends every fault, waits until all members applied the same
// revision, and checks that their states are identical.
func settle(t testing.TB, c *coordtest.Cluster, rep *Report) {
	for i := 0; i < c.Size(); i++ {
		if c.Node(i) == nil {
			c.Restart(i)
		}
	}
	c.WaitReady()
	deadline := time.Now().Add(30 * time.Second)
	var revs [][]int64
	var hashes [][]uint64
	for time.Now().Before(deadline) {
		revs, hashes = nil, nil
		for i := 0; i < c.Size(); i++ {
			r, h := hooks.StateHashes(c.Node(i))
			revs, hashes = append(revs, r), append(hashes, h)
		}
		same := true
		for i := 1; i < len(revs); i++ {
			same = same && fmt.Sprint(revs[i]) == fmt.Sprint(revs[0]) && fmt.Sprint(hashes[i]) == fmt.Sprint(hashes[0])
		}
		if same {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	rep.violate("replicas differ after settling: revisions %v, state hashes %v", revs, hashes)
}

// reference reads the committed history back through a watch on member
// 0: from revision 1, or, when the run compacted (cp), from the
// compaction on, after the events cp read back before compacting.
func reference(t testing.TB, c *coordtest.Cluster, cp *compactions) *history {
	t.Helper()
	revs, _ := hooks.StateHashes(c.Node(0))
	h := &history{final: revs[0], byKey: map[string][]refEvent{}, perRev: map[int64]int{}}
	h.compacted, h.events = cp.from, cp.events
	rest, err := watchRange(c.Node(0), h.compacted, h.final)
	if err != nil {
		t.Fatalf("reading history back: %v", err)
	}
	h.events = append(slices.Clip(h.events), rest...)
	for _, e := range h.events {
		h.byKey[e.key] = append(h.byKey[e.key], e)
		h.perRev[e.rev]++
	}
	return h
}

// watchRange collects the events of revisions [from, to] under /rob/.
func watchRange(n *coord.Node, from, to int64) ([]refEvent, error) {
	var out []refEvent
	if from > to {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := n.Watch(ctx, "/rob/", coord.WithPrefix(), coord.WithRev(coord.Revision(from)), coord.WithProgressNotify(100*time.Millisecond))
	for r := range w {
		if err := r.Err(); err != nil {
			return nil, err
		}
		// The response that reaches to may carry later revisions too: they
		// are not in [from, to].
		for _, e := range r.Events {
			if toRef(e).rev <= to {
				out = append(out, toRef(e))
			}
		}
		if int64(r.Header.Revision) >= to {
			return out, nil
		}
	}
	return nil, fmt.Errorf("watch ended before revision %d", to)
}

// changed reports whether op was an acknowledged write that created a
// revision, and which event it must have produced.
func changed(op porcupine.Operation) (refEvent, bool) {
	in, out := op.Input.(input), op.Output.(output)
	if out.Unknown || out.LeaseNotFound {
		return refEvent{}, false
	}
	switch {
	case in.Kind == opPut, in.Kind == opCAS && out.Succeeded:
		return refEvent{rev: out.Rev, key: in.Key, value: in.Value}, true
	case in.Kind == opDelete && out.Deleted > 0:
		return refEvent{rev: out.Rev, key: in.Key, delete: true}, true
	}
	return refEvent{}, false
}

// checkRevisions checks revision order against real time: every write gets
// a distinct revision, later than any write that finished before it began,
// and every read is at least as new as every write finished before it.
func checkRevisions(rep *Report, ops []porcupine.Operation) {
	type w struct{ call, ret, rev int64 }
	var writes []w
	seen := map[int64]bool{}
	for _, op := range ops {
		if e, ok := changed(op); ok {
			if seen[e.rev] {
				rep.violate("two acknowledged writes got revision %d", e.rev)
			}
			seen[e.rev] = true
			writes = append(writes, w{op.Call, op.Return, e.rev})
		}
	}
	sort.Slice(writes, func(i, j int) bool { return writes[i].ret < writes[j].ret })
	sorted := append([]porcupine.Operation(nil), ops...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
	var maxRev int64
	j := 0
	for _, op := range sorted {
		for j < len(writes) && writes[j].ret < op.Call {
			maxRev = max(maxRev, writes[j].rev)
			j++
		}
		out := op.Output.(output)
		if out.Unknown || out.LeaseNotFound || op.Input.(input).Kind == opRevoke {
			continue
		}
		if _, isWrite := changed(op); isWrite && out.Rev <= maxRev {
			rep.violate("%s got revision %d, not after revision %d written before it started", op.Input.(input).Kind, out.Rev, maxRev)
		} else if !isWrite && out.Rev < maxRev {
			rep.violate("%s at revision %d is older than revision %d written before it started", op.Input.(input).Kind, out.Rev, maxRev)
		}
	}
}

// checkDurability checks that every acknowledged write is in the committed
// history, as acknowledged.
func checkDurability(rep *Report, ops []porcupine.Operation, h *history) {
	at := map[[2]any]refEvent{}
	for _, e := range h.events {
		at[[2]any{e.rev, e.key}] = e
	}
	for _, op := range ops {
		want, ok := changed(op)
		if !ok {
			continue
		}
		rep.Acked++
		got, ok := at[[2]any{want.rev, want.key}]
		if !ok || got != want {
			rep.Lost++
			rep.violate("acknowledged write lost: %+v, history has %+v (present %v)", want, got, ok)
		}
	}
}

// answeredBeforeCut drops the reads answered by a member incarnation after
// its power failure (cuts): see recorder.powerLoss.
func answeredBeforeCut(reads []serialRead, cuts map[*coord.Node]int64) []serialRead {
	out := reads[:0:0]
	for _, r := range reads {
		if cut, ok := cuts[r.node]; ok && r.ret >= cut {
			continue
		}
		out = append(out, r)
	}
	return out
}

// checkSerial checks serializable reads: each shows the key as it was at
// the read's revision, and a member's revisions never go backwards.
func checkSerial(rep *Report, reads []serialRead, h *history) {
	sort.Slice(reads, func(i, j int) bool { return reads[i].call < reads[j].call })
	lastRet := map[int][]serialRead{}
	for _, r := range reads {
		found, value, modRev := h.stateAt(r.key, r.rev)
		if found != r.found || value != r.value || (found && modRev != r.modRev) {
			rep.violate("serializable read on member %d of %s at revision %d saw (%v %q @%d), history has (%v %q @%d)",
				r.member, r.key, r.rev, r.found, r.value, r.modRev, found, value, modRev)
		}
		for _, p := range lastRet[r.member] {
			if p.ret < r.call && p.rev > r.rev {
				rep.violate("member %d went back in time: read at revision %d after a read at %d", r.member, r.rev, p.rev)
				break
			}
		}
		lastRet[r.member] = append(lastRet[r.member], r)
		if len(lastRet[r.member]) > 64 {
			lastRet[r.member] = lastRet[r.member][1:]
		}
	}
}

// watchLog is what one long-lived watcher received.
type watchLog struct {
	events    []refEvent
	responses [][]refEvent
	err       error
	next      atomic.Int64 // the revision it resumes from
}

// follow watches /rob/ on member i from revision 1, resuming from the next
// revision whenever the member closes and comes back, until stop.
func (w *watchLog) follow(c *coordtest.Cluster, i int, stop chan struct{}) {
	next := int64(1)
	w.next.Store(next)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-stop; cancel() }()
	for ctx.Err() == nil {
		n := c.Node(i)
		if n == nil {
			time.Sleep(20 * time.Millisecond) // member down: wait for its restart
			continue
		}
		// Progress notifications move next past revisions with no event
		// under /rob/, so that faultQuota can compact up to it.
		for r := range n.Watch(ctx, "/rob/", coord.WithPrefix(), coord.WithRev(coord.Revision(next)), coord.WithProgressNotify(100*time.Millisecond)) {
			if err := r.Err(); err != nil {
				if !errors.Is(err, coord.ErrClosed) {
					w.err = err
					return
				}
				break
			}
			var resp []refEvent
			for _, e := range r.Events {
				resp = append(resp, toRef(e))
			}
			if len(resp) > 0 {
				w.events = append(w.events, resp...)
				w.responses = append(w.responses, resp)
				next = resp[len(resp)-1].rev + 1
			} else if r.IsProgressNotify() {
				next = max(next, int64(r.Header.Revision)+1)
			}
			w.next.Store(next)
		}
	}
}

// checkWatch compares a watcher's events with the committed history: the
// same events in the same order, no gap, no duplicate, whole revisions per
// response. It returns how many events it checked.
func checkWatch(rep *Report, name string, w *watchLog, h *history) int {
	if w.err != nil {
		rep.violate("%s: watch failed: %v", name, w.err)
	}
	for i, e := range w.events {
		if i >= len(h.events) {
			rep.violate("%s: %d events beyond the committed history", name, len(w.events)-i)
			break
		}
		if e != h.events[i] {
			rep.violate("%s: event %d is %+v, history has %+v (gap, duplicate or reorder)", name, i, e, h.events[i])
			break
		}
	}
	for _, resp := range w.responses {
		count := map[int64]int{}
		for _, e := range resp {
			count[e.rev]++
		}
		for rev, n := range count {
			if n != h.perRev[rev] {
				rep.violate("%s: a response carried %d of the %d events of revision %d", name, n, h.perRev[rev], rev)
			}
		}
	}
	return len(w.events)
}

// checkResume starts a watch at a random past revision on a random member
// and checks it replays exactly the history from there.
func checkResume(t testing.TB, c *coordtest.Cluster, rep *Report, h *history, rng *rand.Rand) {
	if h.final-h.compacted < 1 {
		return
	}
	from := h.compacted + rng.Int63n(h.final-h.compacted+1)
	got, err := watchRange(c.Node(rng.Intn(c.Size())), from, h.final)
	if err != nil {
		t.Fatalf("resuming a watch at revision %d: %v", from, err)
	}
	var want []refEvent
	for _, e := range h.events {
		if e.rev >= from {
			want = append(want, e)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		rep.violate("watch resumed at revision %d replayed %d events, history has %d after it", from, len(got), len(want))
	}
}
