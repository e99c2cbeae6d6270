package coord

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coordkit/coordkit/coord/internal/hooks"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// WatchResponse carries the events of one or more whole revisions, in
// revision order, or a progress notification (no events), or the error that
// ended the watch (Err() non-nil; the channel closes after it).
type WatchResponse struct {
	Header Header
	Events []Event
	// CompactRevision is set when the watch ended with ErrCompacted: the
	// oldest revision still available.
	CompactRevision Revision
	err             error
}

// Err returns why the watch ended, or nil.
func (r *WatchResponse) Err() error { return r.err }

// IsProgressNotify reports whether r is a progress notification.
func (r *WatchResponse) IsProgressNotify() bool { return len(r.Events) == 0 && r.err == nil }

// WatchChan delivers a watch's responses.
type WatchChan <-chan WatchResponse

// Watch streams the changes to a key, or to a range with WithPrefix,
// WithFromKey or WithRange, from this member's replica as it applies them.
// Without WithRev it starts after this replica's current revision, which
// may be behind the cluster's: a write just acknowledged by another member
// may still show as an event. To see exactly the changes after a write, pass
// WithRev(its Header.Revision+1). WithRev(r) replays every change from
// revision r on, then continues live. Other options:
// WithPrevKV, WithFilterPut, WithFilterDelete, WithProgressNotify.
//
// Guarantees: events are ordered by revision, never duplicated, never
// skipped, and all events of one revision arrive in one response. A consumer
// that reads slowly never slows the cluster: the watch falls back to reading
// history and catches up; if compaction passes it first, the channel
// delivers a response whose Err() is ErrCompacted and closes. Nothing is
// dropped silently.
//
// The channel closes when ctx ends (no further response), or after a
// response with Err() set: ErrCompacted (with CompactRevision set, also when
// WithRev asks for a compacted revision), ErrClosed when the Node closes, or
// a bad request (ErrEmptyKey, ErrInvalidOption, ErrCrossShard when the range
// spans shards). A WithRev beyond the shard's revision is not an error: the
// watch waits for it, as etcd's does. Watch itself does not block.
func (n *Node) Watch(ctx context.Context, key string, opts ...OpOption) WatchChan {
	out := make(chan WatchResponse, 16)
	fail := func(err error) WatchChan {
		out <- WatchResponse{err: err}
		close(out)
		return out
	}
	o, err := buildOp(kindWatch, opts)
	if err != nil {
		return fail(err)
	}
	if err := n.checkRangeKey(key, o); err != nil {
		return fail(err)
	}
	end := o.rangeEnd(key)
	si := n.rangeShard(key, end)
	if si < 0 {
		return fail(fmt.Errorf("%w: watch on %q", ErrCrossShard, key))
	}
	if n.host.Closed() {
		return fail(n.host.ErrClosed())
	}
	s := n.shards[si]
	w := &watcher{s: s, key: key, end: end, o: o, out: out, signal: make(chan struct{}, 1)}
	if compacted, err := s.hub.add(w, int64(o.rev)); err != nil {
		out <- WatchResponse{err: err, CompactRevision: Revision(compacted)}
		close(out)
		return out
	}
	n.wg.Add(1)
	go w.run(ctx)
	return out
}

// maxPendingEvents bounds what the hub queues for one watcher; past it the
// watcher is switched to reading history, so apply never waits for it.
const maxPendingEvents = 4096

// catchUpBatch bounds how many events one history read returns.
const catchUpBatch = 1024

// hub hands a shard's applied events to its watchers. Applied runs on the
// apply goroutine and never blocks on a watcher. Watchers of one key are
// indexed by it, so a batch costs the range watchers plus the watchers of
// the keys it changed, not every watcher of the shard.
type hub struct {
	s      *shard
	mu     sync.Mutex                       // guards the maps; held by Applied and by a watcher's final catch-up step
	byKey  map[string]map[*watcher]struct{} // watchers of one key
	ranges map[*watcher]struct{}            // watchers of a prefix or range
	// latest is the revision of the last batch handed to every watcher,
	// stored after the hand-over: a watcher that reads it, then finds
	// nothing pending, has delivered everything up to it.
	latest atomic.Int64
}

func newHub(s *shard) *hub {
	return &hub{s: s, byKey: map[string]map[*watcher]struct{}{}, ranges: map[*watcher]struct{}{}}
}

type pendingRev struct {
	rev    int64
	events []Event
}

type watcher struct {
	s      *shard
	key    string
	end    string
	o      *op
	out    chan WatchResponse
	signal chan struct{}

	mu      sync.Mutex
	next    int64 // next revision to deliver (owned by run, read by push under mu)
	lagging bool  // true: ignore pushes, read history
	pending []pendingRev
	npend   int
	start   int64 // the revision the watcher started after: nothing at or below it is its business
}

// add registers w from revision rev (0: from the next one). A revision
// below the compaction point fails with ErrCompacted and that point.
func (h *hub) add(w *watcher, rev int64) (compacted int64, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.s.View()
	switch {
	case rev == 0:
		w.next = v.Revision() + 1
	case rev < v.CompactRevision():
		return v.CompactRevision(), fmt.Errorf("%w: revision %d, oldest available %d", ErrCompacted, rev, v.CompactRevision())
	default:
		w.next = rev
		w.lagging = rev <= v.Revision()
	}
	w.start = v.Revision()
	h.index(w)
	return 0, nil
}

// index files w under its key, or with the range watchers; h.mu must be
// held.
func (h *hub) index(w *watcher) {
	if w.end == "" {
		ws := h.byKey[w.key]
		if ws == nil {
			ws = map[*watcher]struct{}{}
			h.byKey[w.key] = ws
		}
		ws[w] = struct{}{}
	} else {
		h.ranges[w] = struct{}{}
	}
}

// size is the number of watchers; h.mu must be held.
func (h *hub) size() int {
	n := len(h.ranges)
	for _, ws := range h.byKey {
		n += len(ws)
	}
	return n
}

// forEach calls f for every watcher; h.mu must be held.
func (h *hub) forEach(f func(*watcher)) {
	for w := range h.ranges {
		f(w)
	}
	for _, ws := range h.byKey {
		for w := range ws {
			f(w)
		}
	}
}

func (h *hub) remove(w *watcher) {
	h.mu.Lock()
	ws := h.ranges
	if w.end == "" {
		ws = h.byKey[w.key]
	}
	delete(ws, w)
	if w.end == "" && len(ws) == 0 {
		delete(h.byKey, w.key)
	}
	h.mu.Unlock()
}

// Applied implements sm.Listener for the shard: it runs on the apply
// goroutine once the batch is visible through the machine's View.
func (s *shard) Applied(rev int64, events []sm.Event) {
	h := s.hub
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

// Recovered implements sm.Listener: the replica jumped to a snapshot's state
// without events, so every watcher re-reads from history what it has not
// delivered yet (or ends with ErrCompacted if that history is gone).
func (s *shard) Recovered(v *sm.View) {
	h := s.hub
	h.mu.Lock()
	h.forEach(func(w *watcher) {
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

func (w *watcher) matches(ev *sm.Event) bool {
	if !inRange(ev.KV.Key, w.key, w.end) {
		return false
	}
	if ev.Delete {
		return !w.o.filterDelete
	}
	return !w.o.filterPut
}

func inRange(key, start, end string) bool {
	if end == "" {
		return key == start
	}
	return key >= start && (end == "\x00" || key < end)
}

// push queues the events w wants and wakes it.
func (w *watcher) push(events []sm.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lagging {
		return
	}
	wake := false
	drop := hooks.DropWatchEvent.Load()
	for i := range events {
		ev := &events[i]
		r := ev.KV.ModRevision
		if r < w.next || !w.matches(ev) || (drop != nil && (*drop)(w.s.n.cfg.Name, r)) {
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
		p.events = append(p.events, w.convert(ev))
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

func (w *watcher) convert(ev *sm.Event) Event {
	e := Event{Type: EventPut, KV: fromKV(ev.KV)}
	if ev.Delete {
		e.Type = EventDelete
	}
	if w.o.prevKV {
		e.PrevKV = fromKV(ev.PrevKV)
	}
	return e
}

func (w *watcher) run(ctx context.Context) {
	n := w.s.n
	defer n.wg.Done()
	defer close(w.out)
	defer w.s.hub.remove(w)
	var tick <-chan time.Time
	if w.o.progress > 0 {
		t := time.NewTicker(w.o.progress)
		defer t.Stop()
		tick = t.C
	}
	// send delivers r; false when the watch must end.
	send := func(r WatchResponse) bool {
		select {
		case w.out <- r:
			return true
		case <-ctx.Done():
			return false
		case <-n.host.Done():
			select { // best effort: tell a reader why, never block Close
			case w.out <- WatchResponse{err: ErrClosed}:
			default:
			}
			return false
		}
	}
	sentSince := false
	for {
		// The hub's latest first: everything up to it is pending by then.
		latest := max(w.s.hub.latest.Load(), w.start)
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
			resp := WatchResponse{Header: w.s.n.header(w.s, batch[len(batch)-1].rev)}
			for _, p := range batch {
				resp.Events = append(resp.Events, p.events...)
			}
			last := batch[len(batch)-1].rev
			w.mu.Lock()
			w.next = last + 1
			w.mu.Unlock()
			if !send(resp) {
				return
			}
			sentSince = true
			continue
		}
		select {
		case <-w.signal:
		case <-tick:
			if !sentSince {
				if !send(WatchResponse{Header: w.s.n.header(w.s, latest)}) {
					return
				}
			}
			sentSince = false
		case <-ctx.Done():
			return
		case <-n.host.Done():
			select {
			case w.out <- WatchResponse{err: ErrClosed}:
			default:
			}
			return
		}
	}
}

// catchUp reads history until the watcher has everything the hub has
// published, then switches it back to pushes. The last step holds the hub's
// lock, so no Applied call can slip between the history read and the switch.
func (w *watcher) catchUp(send func(WatchResponse) bool) bool {
	h := w.s.hub
	for {
		v := w.s.View()
		w.mu.Lock()
		next := w.next
		w.mu.Unlock()
		if next < v.CompactRevision() {
			send(WatchResponse{err: fmt.Errorf("%w: watch needs revision %d, oldest available %d", ErrCompacted, next, v.CompactRevision()),
				CompactRevision: Revision(v.CompactRevision())})
			return false
		}
		if next <= v.Revision() {
			if !w.deliverHistory(v, next, send) {
				return false
			}
			continue
		}
		h.mu.Lock()
		v = w.s.View()
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

func (w *watcher) deliverHistory(v *sm.View, next int64, send func(WatchResponse) bool) bool {
	evs, last := v.Events(next, v.Revision(), w.key, w.end, catchUpBatch)
	resp := WatchResponse{Header: w.s.n.header(w.s, last)}
	drop := hooks.DropWatchEvent.Load()
	for i := range evs {
		if w.matches(&evs[i]) && (drop == nil || !(*drop)(w.s.n.cfg.Name, evs[i].KV.ModRevision)) {
			resp.Events = append(resp.Events, w.convert(&evs[i]))
		}
	}
	w.mu.Lock()
	w.next = last + 1
	w.mu.Unlock()
	if len(resp.Events) == 0 {
		return true
	}
	return send(resp)
}
