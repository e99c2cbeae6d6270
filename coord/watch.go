package coord

import (
	"context"
	"fmt"

	"github.com/coordkit/coordkit/coord/internal/request"
	"github.com/coordkit/coordkit/coord/internal/sm"
	"github.com/coordkit/coordkit/coord/internal/watch"
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
	o, err := request.Build(request.Watch, opts)
	if err != nil {
		return fail(err)
	}
	if err := n.m.Limits().CheckRange(key, o); err != nil {
		return fail(err)
	}
	end := o.RangeEnd(key)
	si := n.m.Router().RangeShard(key, end)
	if si < 0 {
		return fail(fmt.Errorf("%w: watch on %q", ErrCrossShard, key))
	}
	if n.m.Host.Closed() {
		return fail(n.m.Host.ErrClosed())
	}
	s := n.m.Shards[si]
	w, oldest := s.Hub.Add(watch.Filter{Key: key, End: end, NoPut: o.FilterPut, NoDelete: o.FilterDelete}, o.Rev)
	if w == nil {
		out <- WatchResponse{err: &CompactedError{Revision: Revision(o.Rev), Oldest: Revision(oldest)}, CompactRevision: Revision(oldest)}
		close(out)
		return out
	}
	n.m.Go(func() {
		defer close(out)
		watch.Deliver(ctx, w, n.m.Host.Done(), o.Progress, out, func(b watch.Batch) (WatchResponse, bool) {
			if b.Compacted > 0 {
				return WatchResponse{err: &CompactedError{Revision: Revision(b.Rev), Oldest: Revision(b.Compacted)}, CompactRevision: Revision(b.Compacted)}, true
			}
			r := WatchResponse{Header: n.header(s, b.Rev), Events: make([]Event, len(b.Events))}
			for i := range b.Events {
				r.Events[i] = event(&b.Events[i], o.PrevKV)
			}
			return r, false
		}, WatchResponse{err: ErrClosed})
	})
	return out
}

// event is ev as a watcher sees it: with its previous version if prevKV.
func event(ev *sm.Event, prevKV bool) Event {
	e := Event{Type: EventPut, KV: fromKV(ev.KV)}
	if ev.Delete {
		e.Type = EventDelete
	}
	if prevKV {
		e.PrevKV = fromKV(ev.PrevKV)
	}
	return e
}
