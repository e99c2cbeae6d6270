// Package watch hands one shard replica's applied events to the watchers
// of its keys, for package coord's Watch.
//
// A Hub is the shard state machine's event sink (its Applied and Recovered
// are the sm.Listener methods of the same names): it runs on the apply
// goroutine and never blocks on a watcher. Each Watcher queues what it
// wants, up to a bound; past it, or when the replica jumps to a snapshot,
// it reads what it missed from the state's history instead, and switches
// back to queued events once caught up. So a slow reader never slows the
// replica, and nothing is dropped silently: a watcher whose next revision
// was compacted away ends with that news.
//
// Guarantees of the events a Watcher delivers: ordered by revision, never
// duplicated, never skipped, and every event of one revision in one batch.
// Hub and Watcher are safe for concurrent use.
package watch

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// maxPendingEvents bounds what the hub queues for one watcher; past it the
// watcher is switched to reading history, so apply never waits for it.
const maxPendingEvents = 4096

// catchUpBatch bounds how many events one history read returns.
const catchUpBatch = 1024

// Hub hands a shard's applied events to its watchers. Watchers of one key
// are indexed by it, so a batch costs the range watchers plus the watchers
// of the keys it changed, not every watcher of the shard.
type Hub struct {
	member string          // for the fault hook (hooks.DropWatchEvent)
	view   func() *sm.View // the replica's latest state
	mu     sync.Mutex      // guards the maps; held by Applied and by a watcher's final catch-up step
	byKey  map[string]map[*Watcher]struct{}
	ranges map[*Watcher]struct{} // watchers of a prefix or range
	// latest is the revision of the last batch handed to every watcher,
	// stored after the hand-over: a watcher that reads it, then finds
	// nothing pending, has delivered everything up to it.
	latest atomic.Int64
}

// NewHub returns the hub of a shard replica whose latest state view
// returns; member names the member, in the fault hooks.
func NewHub(member string, view func() *sm.View) *Hub {
	return &Hub{member: member, view: view, byKey: map[string]map[*Watcher]struct{}{}, ranges: map[*Watcher]struct{}{}}
}

// Filter says which events a watcher wants.
type Filter struct {
	// Key and End are the range: End "" for Key alone, "\x00" for every
	// key from Key on.
	Key, End string
	// NoPut and NoDelete leave out puts, or deletes.
	NoPut, NoDelete bool
}

func (f *Filter) matches(ev *sm.Event) bool {
	if !inRange(ev.KV.Key, f.Key, f.End) {
		return false
	}
	if ev.Delete {
		return !f.NoDelete
	}
	return !f.NoPut
}

func inRange(key, start, end string) bool {
	if end == "" {
		return key == start
	}
	return key >= start && (end == "\x00" || key < end)
}

type pendingRev struct {
	rev    int64
	events []sm.Event
}

// Watcher follows one Filter from a revision on; Run delivers its events.
type Watcher struct {
	h      *Hub
	f      Filter
	signal chan struct{}

	mu      sync.Mutex
	next    int64 // next revision to deliver (owned by Run, read by push under mu)
	lagging bool  // true: ignore pushes, read history
	pending []pendingRev
	npend   int
	start   int64 // the revision the watcher started after: nothing at or below it is its business
}

// Add registers a watcher of f from revision rev (0: from the next one).
// When rev was compacted away it registers nothing and returns the oldest
// revision still available (compacted > 0). A rev beyond the replica's
// revision waits for it.
func (h *Hub) Add(f Filter, rev int64) (w *Watcher, compacted int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.view()
	w = &Watcher{h: h, f: f, signal: make(chan struct{}, 1)}
	switch {
	case rev == 0:
		w.next = v.Revision() + 1
	case rev < v.CompactRevision():
		return nil, v.CompactRevision()
	default:
		w.next = rev
		w.lagging = rev <= v.Revision()
	}
	w.start = v.Revision()
	h.index(w)
	return w, 0
}

// index files w under its key, or with the range watchers; h.mu must be
// held.
func (h *Hub) index(w *Watcher) {
	if w.f.End == "" {
		ws := h.byKey[w.f.Key]
		if ws == nil {
			ws = map[*Watcher]struct{}{}
			h.byKey[w.f.Key] = ws
		}
		ws[w] = struct{}{}
	} else {
		h.ranges[w] = struct{}{}
	}
}

// Len returns the number of watchers.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.ranges)
	for _, ws := range h.byKey {
		n += len(ws)
	}
	return n
}

// forEach calls f for every watcher; h.mu must be held.
func (h *Hub) forEach(f func(*Watcher)) {
	for w := range h.ranges {
		f(w)
	}
	for _, ws := range h.byKey {
		for w := range ws {
			f(w)
		}
	}
}

func (h *Hub) remove(w *Watcher) {
	h.mu.Lock()
	ws := h.ranges
	if w.f.End == "" {
		ws = h.byKey[w.f.Key]
	}
	delete(ws, w)
	if w.f.End == "" && len(ws) == 0 {
		delete(h.byKey, w.f.Key)
	}
	h.mu.Unlock()
}

// Applied hands a batch's events, ordered by revision, to the watchers
// that want them; rev is the revision after the batch. It runs on the
// apply goroutine once the batch is visible through the replica's view, and
// never blocks on a watcher.
func (h *Hub) Applied(rev int64, events []sm.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.latest.Store(rev)
	for w := range h.ranges {
		w.push(events)
	}
	// Events are in revision order, so each key's watchers get theirs in
	// order too.
	for i := range events {
		for w := range h.byKey[events[i].KV.Key] {
			w.push(events[i : i+1])
		}
	}
}

// Recovered tells every watcher that the replica jumped to a snapshot's
// state v without events: each re-reads from history what it has not
// delivered yet (or ends compacted if that history is gone).
func (h *Hub) Recovered(v *sm.View) {
	h.mu.Lock()
	h.forEach(func(w *Watcher) {
		w.mu.Lock()
		w.lagging, w.pending, w.npend = true, nil, 0
		w.mu.Unlock()
		select {
		case w.signal <- struct{}{}:
		default:
		}
	})
	h.latest.Store(v.Revision())
	h.mu.Unlock()
}

// push queues the events w wants and wakes it.
func (w *Watcher) push(events []sm.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lagging {
		return
	}
	wake := false
	for i := range events {
		ev := &events[i]
		r := ev.KV.ModRevision
		if r < w.next || !w.f.matches(ev) || w.h.dropped(r) {
			continue
		}
		if w.npend >= maxPendingEvents {
			w.lagging, w.pending, w.npend = true, nil, 0
			wake = true // to read history
			break
		}
		if k := len(w.pending); k == 0 || w.pending[k-1].rev != r {
			w.pending = append(w.pending, pendingRev{rev: r})
		}
		p := &w.pending[len(w.pending)-1]
		p.events = append(p.events, *ev)
		w.npend++
		wake = true
	}
	if !wake {
		return // nothing for w
	}
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// Batch is what a Watcher delivers: events, a progress notification, or
// the news that ends the watch.
type Batch struct {
	// Rev is the revision up to which the batch reports: its last event's,
	// or the last revision of history it read; for a progress
	// notification, the replica's revision, up to which nothing is
	// pending; with Compacted, the revision the watch needed.
	Rev int64
	// Events, in revision order; none for a progress notification.
	Events []sm.Event
	// Compacted > 0 ends the watch: the next revision it needed was
	// compacted away, and Compacted is the oldest still available.
	Compacted int64
	// Closed ends the watch: the member is closing.
	Closed bool
}

// Run delivers w's batches through send until ctx or stop ends, or the
// watch ends (compacted), and then unregisters w. send returns false to
// end the watch. A Closed batch is sent when stop ends, but send must then
// not block. With progress > 0, a progress notification goes out every
// progress in which nothing else did.
func (w *Watcher) Run(ctx context.Context, stop <-chan struct{}, progress time.Duration, send func(Batch) bool) {
	defer w.h.remove(w)
	var tick <-chan time.Time
	if progress > 0 {
		t := time.NewTicker(progress)
		defer t.Stop()
		tick = t.C
	}
	sentSince := false
	for {
		// The hub's latest first: everything up to it is pending by then.
		latest := max(w.h.latest.Load(), w.start)
		w.mu.Lock()
		lagging := w.lagging
		batch := w.pending
		w.pending, w.npend = nil, 0
		w.mu.Unlock()
		if lagging {
			if !w.catchUp(send) {
				return
			}
			sentSince = true
			continue
		}
		if len(batch) > 0 {
			last := batch[len(batch)-1].rev
			b := Batch{Rev: last}
			for _, p := range batch {
				b.Events = append(b.Events, p.events...)
			}
			w.mu.Lock()
			w.next = last + 1
			w.mu.Unlock()
			if !send(b) {
				return
			}
			sentSince = true
			continue
		}
		select {
		case <-w.signal:
		case <-tick:
			if !sentSince {
				if !send(Batch{Rev: latest}) {
					return
				}
			}
			sentSince = false
		case <-ctx.Done():
			return
		case <-stop:
			send(Batch{Closed: true})
			return
		}
	}
}

// catchUp reads history until the watcher has everything the hub has
// published, then switches it back to pushes. The last step holds the hub's
// lock, so no Applied call can slip between the history read and the switch.
func (w *Watcher) catchUp(send func(Batch) bool) bool {
	h := w.h
	for {
		v := h.view()
		w.mu.Lock()
		next := w.next
		w.mu.Unlock()
		if next < v.CompactRevision() {
			send(Batch{Rev: next, Compacted: v.CompactRevision()})
			return false
		}
		if next <= v.Revision() {
			if !w.deliverHistory(v, next, send) {
				return false
			}
			continue
		}
		h.mu.Lock()
		v = h.view()
		if v.Revision() >= next {
			h.mu.Unlock()
			continue
		}
		w.mu.Lock()
		w.lagging, w.pending, w.npend = false, nil, 0
		w.mu.Unlock()
		h.mu.Unlock()
		return true
	}
}

func (w *Watcher) deliverHistory(v *sm.View, next int64, send func(Batch) bool) bool {
	evs, last := v.Events(next, v.Revision(), w.f.Key, w.f.End, catchUpBatch)
	b := Batch{Rev: last}
	for i := range evs {
		if w.f.matches(&evs[i]) && !w.h.dropped(evs[i].KV.ModRevision) {
			b.Events = append(b.Events, evs[i])
		}
	}
	w.mu.Lock()
	w.next = last + 1
	w.mu.Unlock()
	if len(b.Events) == 0 {
		return true
	}
	return send(b)
}

// Deliver runs w (Run) and sends each batch, converted by conv, on out,
// until ctx or stop ends, or a batch conv marks last (a compaction) was
// sent. When stop ends the watch, closed is sent if out has room: a reader
// learns why, and the member's Close never waits for a reader. It blocks
// until the watch ends; it does not close out.
func Deliver[T any](ctx context.Context, w *Watcher, stop <-chan struct{}, progress time.Duration, out chan<- T,
	conv func(Batch) (r T, last bool), closed T) {
	tell := func() {
		select {
		case out <- closed:
		default:
		}
	}
	w.Run(ctx, stop, progress, func(b Batch) bool {
		if b.Closed {
			tell()
			return false
		}
		r, last := conv(b)
		select {
		case out <- r:
			return !last
		case <-ctx.Done():
			return false
		case <-stop:
			tell()
			return false
		}
	})
}
