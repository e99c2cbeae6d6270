package registry

import (
	"context"
	"strings"

	"github.com/coordkit/coordkit/coord"
)

// EventType says what happened to an instance.
type EventType int

// Event types.
const (
	Added EventType = iota
	Updated
	Removed
	// Synced follows the instances present when a Watch started (each sent
	// as Added): from here on, events are changes.
	Synced
)

func (t EventType) String() string {
	return [...]string{"added", "updated", "removed", "synced"}[t]
}

// Event is one change to a service's instances. Err is set on the last
// event of a watch that failed (coord.ErrCompacted, coord.ErrClosed).
type Event struct {
	Type     EventType
	Instance Instance
	Revision coord.Revision
	Err      error
}

// WatchOption configures Watch.
type WatchOption func(*watchConfig)

type watchConfig struct{ from coord.Revision }

// FromRevision resumes a watch: no initial set, every change after rev.
// Resuming from the Revision of the last event received loses nothing.
func FromRevision(rev coord.Revision) WatchOption { return func(c *watchConfig) { c.from = rev } }

// Watch streams a service's instances: the current set (as Added events),
// then Synced, then every addition, update and removal in revision order,
// with no gap. The channel closes when ctx ends, or after an event with Err
// set. It reads from this member's replica.
func (r *Registry) Watch(ctx context.Context, service string, opts ...WatchOption) <-chan Event {
	out := make(chan Event, 16)
	var c watchConfig
	for _, o := range opts {
		o(&c)
	}
	go func() {
		defer close(out)
		send := func(e Event) bool {
			select {
			case out <- e:
				return true
			case <-ctx.Done():
				return false
			}
		}
		if err := validName("service", service); err != nil {
			send(Event{Err: err})
			return
		}
		from := c.from
		if from == 0 {
			g, err := r.n.Get(ctx, r.serviceDir(service), coord.WithPrefix())
			if err != nil {
				send(Event{Err: err})
				return
			}
			for _, kv := range g.KVs {
				if in, err := decode(kv); err == nil && !send(Event{Type: Added, Instance: in, Revision: kv.ModRevision}) {
					return
				}
			}
			if !send(Event{Type: Synced, Revision: g.Header.Revision}) {
				return
			}
			from = g.Header.Revision
		}
		for resp := range r.n.Watch(ctx, r.serviceDir(service), coord.WithPrefix(), coord.WithRev(from+1), coord.WithPrevKV()) {
			if err := resp.Err(); err != nil {
				send(Event{Err: err, Revision: from})
				return
			}
			for _, ev := range resp.Events {
				e := Event{Revision: ev.KV.ModRevision}
				switch {
				case ev.Type == coord.EventDelete:
					// The record's last version comes with the event while
					// history holds it; after a compaction only the key is
					// known, which still names the instance: a removal is
					// never dropped.
					in := Instance{Service: service, ID: strings.TrimPrefix(ev.KV.Key, r.serviceDir(service))}
					if ev.PrevKV != nil {
						if old, err := decode(ev.PrevKV); err == nil {
							in = old
						}
					}
					e.Type, e.Instance = Removed, in
					e.Instance.Revision = ev.KV.ModRevision
				default:
					in, err := decode(ev.KV)
					if err != nil {
						continue
					}
					e.Type, e.Instance = Updated, in
					if ev.KV.Version == 1 {
						e.Type = Added
					}
				}
				if !send(e) {
					return
				}
				from = e.Revision
			}
		}
	}()
	return out
}
