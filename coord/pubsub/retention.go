package pubsub

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// Retention bounds what a topic keeps; zero fields mean no bound. Oldest
// messages go first, a batch always whole.
type Retention struct {
	MaxMessages int           `json:"max_messages,omitempty"`
	MaxBytes    int64         `json:"max_bytes,omitempty"`
	MaxAge      time.Duration `json:"max_age,omitempty"`
}

// SetRetention stores topic's retention. It is applied by Trim, which
// Publish runs every trimEvery publishes of this PubSub value.
func (p *PubSub) SetRetention(ctx context.Context, topic string, r Retention) error {
	if err := validTopic(topic); err != nil {
		return err
	}
	if r.MaxMessages < 0 || r.MaxBytes < 0 || r.MaxAge < 0 {
		return fmt.Errorf("%w: negative retention", ErrInvalid)
	}
	b, _ := json.Marshal(r)
	_, err := p.n.Put(ctx, p.meta(topic)+"retention", b)
	return err
}

// trimEvery: Publish trims once per this many publishes.
const trimEvery = 32

func (p *PubSub) maybeTrim(ctx context.Context, topic string) {
	if p.pubs.Add(1)%trimEvery == 0 {
		_, _ = p.Trim(ctx, topic) // best effort: the next one retries
	}
}

// Stats describes a topic.
type Stats struct {
	Messages int
	Bytes    int64
	First    Offset // 0 when empty
	Last     Offset
	Removed  int64 // messages removed by retention, ever
}

// Stats reads a topic's counters (linearizable).
func (p *PubSub) Stats(ctx context.Context, topic string) (Stats, error) {
	var st Stats
	if err := validTopic(topic); err != nil {
		return st, err
	}
	g, err := p.n.Get(ctx, p.messages(topic), coord.WithPrefix(), coord.WithSort(coord.SortByCreateRevision, coord.SortAscend))
	if err != nil {
		return st, err
	}
	msgs := toMessages(topic, g.KVs)
	st.Messages = len(msgs)
	for _, m := range msgs {
		st.Bytes += int64(len(m.Payload))
	}
	if len(msgs) > 0 {
		st.First, st.Last = msgs[0].Offset, msgs[len(msgs)-1].Offset
	}
	r, err := p.n.Get(ctx, p.meta(topic)+"removed")
	if err != nil {
		return st, err
	}
	if len(r.KVs) > 0 {
		st.Removed, _ = strconv.ParseInt(string(r.KVs[0].Value), 10, 64)
	}
	return st, nil
}

// Trim removes the messages topic's retention no longer keeps and returns
// how many. Every removal is counted (Stats.Removed) and remembered, so a
// subscription to a removed offset fails with an *OutOfRangeError.
func (p *PubSub) Trim(ctx context.Context, topic string) (int, error) {
	if err := validTopic(topic); err != nil {
		return 0, err
	}
	rg, err := p.n.Get(ctx, p.meta(topic)+"retention")
	if err != nil || len(rg.KVs) == 0 {
		return 0, err
	}
	var ret Retention
	if err := json.Unmarshal(rg.KVs[0].Value, &ret); err != nil {
		return 0, fmt.Errorf("pubsub: topic %s: bad retention record: %w", topic, err)
	}
	g, err := p.n.Get(ctx, p.messages(topic), coord.WithPrefix(), coord.WithSort(coord.SortByCreateRevision, coord.SortAscend))
	if err != nil {
		return 0, err
	}
	kvs := g.KVs
	var bytes int64
	for _, kv := range kvs {
		bytes += int64(len(kv.Value) - 8)
	}
	cut := 0 // remove kvs[:cut]
	now := time.Now()
	for cut < len(kvs) {
		msgs := toMessages(topic, kvs[cut:cut+1])
		tooOld := ret.MaxAge > 0 && len(msgs) == 1 && now.Sub(msgs[0].Time) > ret.MaxAge
		if !(ret.MaxMessages > 0 && len(kvs)-cut > ret.MaxMessages) && !(ret.MaxBytes > 0 && bytes > ret.MaxBytes) && !tooOld {
			break
		}
		bytes -= int64(len(kvs[cut].Value) - 8)
		cut++
	}
	for cut > 0 && cut < len(kvs) && kvs[cut].CreateRevision == kvs[cut-1].CreateRevision {
		cut++ // a batch goes whole
	}
	if cut == 0 {
		return 0, nil
	}
	removed := 0
	for start := 0; start < cut; start += 100 {
		end := min(start+100, cut)
		last := offsetOf(kvs[end-1].CreateRevision, 1<<batchBits-1)
		ops := []coord.Op{coord.OpPut(p.meta(topic)+"trimmed", []byte(strconv.FormatInt(int64(last), 10)))}
		for _, kv := range kvs[start:end] {
			ops = append(ops, coord.OpDelete(kv.Key))
		}
		if _, err := p.n.Txn(ctx).Then(ops...).Commit(); err != nil {
			return removed, err
		}
		removed += end - start
	}
	return removed, p.count(ctx, topic, removed)
}

// count adds n to the topic's removed counter (compare-and-swap).
func (p *PubSub) count(ctx context.Context, topic string, n int) error {
	key := p.meta(topic) + "removed"
	for {
		g, err := p.n.Get(ctx, key)
		if err != nil {
			return err
		}
		var cur int64
		var rev coord.Revision
		if len(g.KVs) > 0 {
			cur, _ = strconv.ParseInt(string(g.KVs[0].Value), 10, 64)
			rev = g.KVs[0].ModRevision
		}
		r, err := p.n.Txn(ctx).If(coord.Compare(coord.ModRevision(key), "=", rev)).
			Then(coord.OpPut(key, []byte(strconv.FormatInt(cur+int64(n), 10)))).Commit()
		if err != nil || r.Succeeded {
			return err
		}
	}
}
