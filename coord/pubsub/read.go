package pubsub

import (
	"context"
	"errors"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// pageSize bounds one read of retained messages; larger than any batch, so
// a page can always end on a whole revision.
const pageSize = 512

// page reads retained messages with offset >= from, whole revisions only,
// and returns them with the revision the read reflects and whether more
// messages may follow.
func (p *PubSub) page(ctx context.Context, topic string, from Offset) ([]Message, coord.Revision, bool, error) {
	opts := []coord.OpOption{coord.WithPrefix(), coord.WithSort(coord.SortByCreateRevision, coord.SortAscend), coord.WithLimit(pageSize)}
	if rev := from.revision(); rev > 0 {
		opts = append(opts, coord.WithMinCreateRev(rev))
	}
	g, err := p.n.Get(ctx, p.messages(topic), opts...)
	if err != nil {
		return nil, 0, false, err
	}
	kvs := g.KVs
	if g.More && len(kvs) > 0 {
		// Drop the last revision: the limit may have cut it.
		last := kvs[len(kvs)-1].CreateRevision
		for len(kvs) > 0 && kvs[len(kvs)-1].CreateRevision == last {
			kvs = kvs[:len(kvs)-1]
		}
	}
	var out []Message
	for _, m := range toMessages(topic, kvs) {
		if m.Offset >= from {
			out = append(out, m)
		}
	}
	return out, g.Header.Revision, g.More, nil
}

// SubscribeOption chooses where a subscription starts.
type SubscribeOption func(*subscribeConfig)

type subscribeConfig struct {
	from     Offset
	earliest bool
	at       time.Time
	set      int
}

// FromOffset starts at offset o (the message at o, if any, is delivered).
// An offset older than retention fails with an *OutOfRangeError.
func FromOffset(o Offset) SubscribeOption {
	return func(c *subscribeConfig) { c.from, c.set = o, c.set+1 }
}

// FromEarliest starts at the oldest retained message.
func FromEarliest() SubscribeOption {
	return func(c *subscribeConfig) { c.earliest, c.set = true, c.set+1 }
}

// FromTime starts at the first retained message published at or after t.
func FromTime(t time.Time) SubscribeOption {
	return func(c *subscribeConfig) { c.at, c.set = t, c.set+1 }
}

// Delivery is one item of a subscription: a message, or the error that
// ended it (the channel closes after it).
type Delivery struct {
	Message
	// Deliveries counts the deliveries of this message to this consumer or
	// group member, this one included (durable consumers and groups; 0
	// for Subscribe).
	Deliveries int
	Err        error
}

// Subscribe delivers topic's messages from the chosen start (default: every
// message published after Subscribe returns) in offset order, with no gap
// and no duplicate, until ctx ends or the Node closes. It resolves its start
// before returning (a linearizable read; with FromTime, a scan of retained
// messages), then delivers in the background: catch-up reads are
// linearizable, live messages come from this member's replica. A read that
// times out or finds no leader (a leader change) is retried with backoff
// while ctx lives. Errors arrive as a Delivery with Err: ErrInvalid, an
// *OutOfRangeError, coord.ErrClosed.
func (p *PubSub) Subscribe(ctx context.Context, topic string, opts ...SubscribeOption) <-chan Delivery {
	out := make(chan Delivery, 64)
	from, err := p.start(ctx, topic, opts)
	if err != nil {
		out <- Delivery{Err: err}
		close(out)
		return out
	}
	go func() {
		defer close(out)
		err := p.stream(ctx, topic, from, func(m Message) bool {
			select {
			case out <- Delivery{Message: m}:
				return true
			case <-ctx.Done():
				return false
			}
		})
		if err != nil && ctx.Err() == nil {
			select {
			case out <- Delivery{Err: err}:
			case <-ctx.Done():
			}
		}
	}()
	return out
}

// start resolves the subscription's first offset.
func (p *PubSub) start(ctx context.Context, topic string, opts []SubscribeOption) (Offset, error) {
	if err := validTopic(topic); err != nil {
		return 0, err
	}
	var c subscribeConfig
	for _, o := range opts {
		o(&c)
	}
	if c.set > 1 {
		return 0, errors.Join(ErrInvalid, errors.New("pubsub: choose one of FromOffset, FromEarliest, FromTime"))
	}
	switch {
	case c.earliest:
		return 0, nil
	case !c.at.IsZero():
		for from := Offset(0); ; {
			msgs, rev, more, err := p.page(ctx, topic, from)
			if err != nil {
				return 0, err
			}
			for _, m := range msgs {
				if !m.Time.Before(c.at) {
					return m.Offset, nil
				}
			}
			if !more {
				return offsetOf(rev+1, 0), nil
			}
			from = msgs[len(msgs)-1].Offset + 1
		}
	case c.set == 1:
		rec, _, _, err := p.record(ctx, topic)
		if err != nil {
			return 0, err
		}
		if rec.Trimmed > 0 && c.from <= rec.Trimmed {
			t, err := p.tally(ctx, topic)
			if err != nil {
				return 0, err
			}
			return 0, &OutOfRangeError{Requested: c.from, Earliest: t.First}
		}
		return c.from, nil
	}
	g, err := p.n.Get(ctx, p.messages(topic), coord.WithPrefix(), coord.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return offsetOf(g.Header.Revision+1, 0), nil
}

// stream delivers messages with offset >= from to f until f returns false
// or an error: retained messages page by page, then live ones from a watch.
// If the watch falls behind history compaction it pages again.
func (p *PubSub) stream(ctx context.Context, topic string, from Offset, f func(Message) bool) error {
	for {
		var at coord.Revision
		for {
			var msgs []Message
			var rev coord.Revision
			var more bool
			err := retrying(ctx, func() (err error) {
				msgs, rev, more, err = p.page(ctx, topic, from)
				return err
			})
			if err != nil {
				return err
			}
			for _, m := range msgs {
				if !f(m) {
					return nil
				}
				from = m.Offset + 1
			}
			if !more {
				at = rev
				break
			}
		}
		if from.revision() <= at {
			from = offsetOf(at+1, 0)
		}
		err := p.follow(ctx, topic, at, &from, f)
		if !errors.Is(err, coord.ErrCompacted) {
			return err
		}
	}
}

// follow watches new messages after revision at.
func (p *PubSub) follow(ctx context.Context, topic string, at coord.Revision, from *Offset, f func(Message) bool) error {
	w := p.n.Watch(ctx, p.messages(topic), coord.WithPrefix(), coord.WithRev(at+1), coord.WithFilterDelete())
	for r := range w {
		if err := r.Err(); err != nil {
			return err
		}
		var kvs []*coord.KeyValue
		for _, ev := range r.Events {
			if ev.KV.Version == 1 {
				kvs = append(kvs, ev.KV)
			}
		}
		for _, m := range toMessages(topic, kvs) {
			if m.Offset < *from {
				continue
			}
			if !f(m) {
				return nil
			}
			*from = m.Offset + 1
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return coord.ErrClosed
}
