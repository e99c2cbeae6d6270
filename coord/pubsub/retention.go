package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// Retention bounds what a topic keeps; zero fields mean no bound. Oldest
// messages go first, a batch always whole. MaxAge compares the publisher's
// clock (Message.Time) with the trimming member's.
type Retention struct {
	MaxMessages int           `json:"max_messages,omitempty"`
	MaxBytes    int64         `json:"max_bytes,omitempty"` // payload bytes
	MaxAge      time.Duration `json:"max_age,omitempty"`
	// DuplicateWindow is how long a message ID given with WithMsgID is
	// remembered (see WithMsgID); zero means DefaultDuplicateWindow.
	DuplicateWindow time.Duration `json:"duplicate_window,omitempty"`
}

// SetRetention stores topic's retention, replacing the previous one whole.
// It is applied by Trim, and in the background by RunRetention; setting it
// removes nothing by itself. It blocks for one write through Raft, or until
// ctx ends. Errors: ErrInvalid (a bad topic, a negative field), those of
// coord's Put.
func (p *PubSub) SetRetention(ctx context.Context, topic string, r Retention) error {
	if err := validTopic(topic); err != nil {
		return err
	}
	if r.MaxMessages < 0 || r.MaxBytes < 0 || r.MaxAge < 0 || r.DuplicateWindow < 0 {
		return fmt.Errorf("%w: negative retention", ErrInvalid)
	}
	b, _ := json.Marshal(r)
	_, err := p.n.Put(ctx, p.meta(topic)+"retention", b)
	return err
}

// retention reads topic's retention (linearizable); zero when none is set.
func (p *PubSub) retention(ctx context.Context, topic string) (Retention, error) {
	var r Retention
	g, err := p.n.Get(ctx, p.meta(topic)+"retention")
	if err != nil || len(g.KVs) == 0 {
		return r, err
	}
	if err := json.Unmarshal(g.KVs[0].Value, &r); err != nil {
		return r, fmt.Errorf("pubsub: topic %s: bad retention record: %w", topic, err)
	}
	return r, nil
}

// Stats describes a topic.
type Stats struct {
	Messages int
	Bytes    int64  // payload bytes
	First    Offset // 0 when empty
	Last     Offset // 0 when empty
	Removed  int64  // messages removed by retention, ever
}

// Stats reads a topic's counters, a linearizable snapshot at one revision.
// It reads the counters record and the messages published since Trim (or
// RunRetention) last updated it, not the whole topic: with RunRetention
// running, its cost does not grow with the topic's size; on a topic never
// trimmed it reads every message once per call. It blocks for two
// linearizable reads and a local one (more when a Trim lands between
// them), or until ctx ends. Errors: ErrInvalid, those of coord's Get. Safe
// for concurrent use.
func (p *PubSub) Stats(ctx context.Context, topic string) (Stats, error) {
	if err := validTopic(topic); err != nil {
		return Stats{}, err
	}
	t, err := p.tally(ctx, topic)
	if err != nil {
		return Stats{}, err
	}
	return Stats{Messages: int(t.Count), Bytes: t.Bytes, First: t.First, Last: t.Last, Removed: t.Removed}, nil
}

// counters is a topic's counters record (meta/stats): what the messages
// created at or before revision Rev that still exist add up to, and what
// retention removed. Messages leave a topic only through Trim, which
// updates the record in the transaction that deletes them, on the
// condition that nobody updated it since Trim read it; so the record stays
// true at every later revision, however many messages are published after
// Rev, and a reader adds up only those.
type counters struct {
	Rev     coord.Revision `json:"rev"`
	Count   int64          `json:"count"`
	Bytes   int64          `json:"bytes"`
	First   Offset         `json:"first,omitempty"` // oldest message counted; 0: none
	Last    Offset         `json:"last,omitempty"`  // newest message counted; 0: none
	Removed int64          `json:"removed,omitempty"`
	// Trimmed is the last offset of the newest revision Trim removed
	// messages of: a subscription to an offset up to it is out of range.
	Trimmed Offset `json:"trimmed,omitempty"`
}

func (p *PubSub) statsKey(topic string) string { return p.meta(topic) + "stats" }

// record reads topic's counters record (zero when there is none), its
// ModRevision (0: none) and the revision of the read.
func (p *PubSub) record(ctx context.Context, topic string, opts ...coord.OpOption) (counters, coord.Revision, coord.Revision, error) {
	var c counters
	g, err := p.n.Get(ctx, p.statsKey(topic), opts...)
	if err != nil {
		return c, 0, 0, err
	}
	if len(g.KVs) == 0 {
		return c, 0, g.Header.Revision, nil
	}
	if err := json.Unmarshal(g.KVs[0].Value, &c); err != nil {
		return c, 0, 0, fmt.Errorf("pubsub: topic %s: bad counters record: %w", topic, err)
	}
	return c, g.KVs[0].ModRevision, g.Header.Revision, nil
}

// tally is a topic's counters at one revision: its record plus the messages
// created after the record's revision.
type tally struct {
	counters                // exact at revision at, Rev == at
	at       coord.Revision // the revision read
	mod      coord.Revision // the record's ModRevision: the compare of its update
	fresh    int            // messages added to the record's figures
}

// tally reads topic's counters record, then the messages created after it,
// and checks that the record did not change in between (a Trim), so that
// both reflect one revision.
func (p *PubSub) tally(ctx context.Context, topic string) (*tally, error) {
	for {
		c, mod, _, err := p.record(ctx, topic)
		if err != nil {
			return nil, err
		}
		d, err := p.n.Get(ctx, p.messages(topic), coord.WithPrefix(), coord.WithMinCreateRev(c.Rev+1))
		if err != nil {
			return nil, err
		}
		// This member applied d's revision: read the record as of it here.
		_, again, _, err := p.record(ctx, topic, coord.WithRev(d.Header.Revision), coord.WithSerializable())
		if errors.Is(err, coord.ErrCompacted) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if again != mod {
			continue // a Trim came between the reads
		}
		t := &tally{counters: c, at: d.Header.Revision, mod: mod}
		sortByRevision(d.KVs)
		eachMessage(topic, d.KVs, func(_ *coord.KeyValue, m Message) bool {
			t.Count++
			t.Bytes += int64(len(m.Payload))
			if t.First == 0 {
				t.First = m.Offset
			}
			t.Last = m.Offset
			t.fresh++
			return true
		})
		t.Rev = t.at
		return t, nil
	}
}

// trimChunk bounds the messages one Trim transaction removes, well under
// coord's default MaxTxnOps (a smaller MaxTxnOps halves it).
const trimChunk = 64

// Trim removes the messages topic's retention no longer keeps, oldest
// first, and returns how many. Every removal is counted (Stats.Removed) and
// remembered, so a subscription to a removed offset fails with an
// *OutOfRangeError. Trim also brings the topic's counters up to date (even
// without a retention), so that later Stats read only newer messages.
//
// It reads the counters, the messages published since they were last
// updated, and the oldest messages, up to the first it keeps, not the
// whole topic; it removes them in transactions of up to 64 messages, each
// one conditional on the counters being unchanged since it read them. So
// Trims running at once, on one member or several (say, two runners while
// the shard's leadership moves), remove each message once and count it
// once: the loser of a race reads again.
//
// It blocks until done or ctx ends; it is not atomic as a whole (a failed
// Trim may have removed some messages, all counted). Errors: ErrInvalid,
// those of coord's Get and Txn. Safe for concurrent use.
func (p *PubSub) Trim(ctx context.Context, topic string) (int, error) {
	if err := validTopic(topic); err != nil {
		return 0, err
	}
	ret, err := p.retention(ctx, topic)
	if err != nil {
		return 0, err
	}
	removed, chunk := 0, trimChunk
	for {
		t, err := p.tally(ctx, topic)
		if err != nil {
			return removed, err
		}
		doomed, next, err := p.doomed(ctx, topic, t, ret, chunk, time.Now())
		if err != nil {
			return removed, err
		}
		if len(doomed) == 0 && t.fresh == 0 {
			return removed, nil
		}
		c := t.counters
		ops := make([]coord.Op, 0, len(doomed)+1)
		for _, kv := range doomed {
			ops = append(ops, coord.OpDelete(kv.Key))
			c.Count--
			c.Bytes -= int64(len(kv.Value) - 8)
		}
		if len(doomed) > 0 {
			c.Removed += int64(len(doomed))
			c.Trimmed = offsetOf(doomed[len(doomed)-1].CreateRevision, 1<<batchBits-1)
			c.First = next
			if c.Count == 0 {
				c.First, c.Last = 0, 0
			}
		}
		b, _ := json.Marshal(c)
		ops = append(ops, coord.OpPut(p.statsKey(topic), b))
		r, err := p.n.Txn(ctx).If(coord.Compare(coord.ModRevision(p.statsKey(topic)), "=", t.mod)).Then(ops...).Commit()
		if errors.Is(err, coord.ErrTooManyOps) && chunk > 1 {
			chunk /= 2
			continue
		}
		if err != nil {
			return removed, err
		}
		if !r.Succeeded {
			continue // another Trim came first: count again from its record
		}
		removed += len(doomed)
		if len(doomed) == 0 {
			return removed, nil // the counters are up to date; messages published since wait for the next Trim
		}
	}
}

// doomed returns up to chunk of the oldest messages t counts that ret
// removes, oldest first, and the offset of the first message t counts that
// stays (0: none). It reads the messages in windows of revisions from the
// oldest one, growing each window, so it reads little beyond what it
// removes.
func (p *PubSub) doomed(ctx context.Context, topic string, t *tally, ret Retention, chunk int, now time.Time) ([]*coord.KeyValue, Offset, error) {
	bounded := ret.MaxMessages > 0 || ret.MaxBytes > 0 || ret.MaxAge > 0
	if t.Count == 0 || !bounded && t.First.revision() > t.Trimmed.revision() {
		return nil, 0, nil
	}
	count, bytes := t.Count, t.Bytes
	var out []*coord.KeyValue
	var next Offset
	from, span := max(t.First.revision(), 1), coord.Revision(chunk)
	for from <= t.at && next == 0 {
		to := min(from+span-1, t.at)
		g, err := p.n.Get(ctx, p.messages(topic), coord.WithPrefix(), coord.WithMinCreateRev(from), coord.WithMaxCreateRev(to))
		if err != nil {
			return nil, 0, err
		}
		sortByRevision(g.KVs)
		eachMessage(topic, g.KVs, func(kv *coord.KeyValue, m Message) bool {
			// A batch goes whole: the rest of one partly removed, by this
			// call or by a Trim that stopped at its chunk, goes too.
			whole := kv.CreateRevision <= t.Trimmed.revision() || len(out) > 0 && out[len(out)-1].CreateRevision == kv.CreateRevision
			over := ret.MaxMessages > 0 && count > int64(ret.MaxMessages) || ret.MaxBytes > 0 && bytes > ret.MaxBytes ||
				ret.MaxAge > 0 && now.Sub(m.Time) > ret.MaxAge
			if !whole && !over || len(out) == chunk {
				next = m.Offset
				return false
			}
			out = append(out, kv)
			count--
			bytes -= int64(len(m.Payload))
			return true
		})
		from, span = to+1, 2*span
	}
	return out, next, nil
}
