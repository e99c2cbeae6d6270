package pubsub

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// Errors. Match them with errors.Is.
var (
	// ErrInvalid: an empty topic or one containing '/', or a bad option.
	ErrInvalid = errors.New("pubsub: invalid argument")
	// ErrOffsetOutOfRange: the requested offset is older than the earliest
	// retained message; OutOfRangeError says which that is.
	ErrOffsetOutOfRange = errors.New("pubsub: offset no longer retained")
)

// OutOfRangeError is the error of a subscription that asked for a message
// older than retention.
type OutOfRangeError struct {
	Requested Offset
	Earliest  Offset // 0 when the topic holds no message
}

func (e *OutOfRangeError) Error() string {
	return fmt.Sprintf("pubsub: offset %d no longer retained; earliest available is %d", e.Requested, e.Earliest)
}

// Is makes errors.Is(err, ErrOffsetOutOfRange) hold.
func (e *OutOfRangeError) Is(target error) bool { return target == ErrOffsetOutOfRange }

// Offset orders a topic's messages.
type Offset int64

// batchBits leaves room for the messages of one batch in an offset.
const batchBits = 10

func offsetOf(rev coord.Revision, idx int) Offset { return Offset(int64(rev)<<batchBits | int64(idx)) }

func (o Offset) revision() coord.Revision { return coord.Revision(int64(o) >> batchBits) }

// Message is one published message.
type Message struct {
	Topic   string
	Offset  Offset
	Time    time.Time // when it was published, by the publisher's clock
	Payload []byte
}

// PubSub publishes and subscribes under a key prefix. Safe for concurrent
// use.
type PubSub struct {
	n      *coord.Node
	prefix string
	seq    atomic.Uint64
	id     string
	dedup  dedupLeases
}

// New returns a PubSub keeping its topics under prefix (a top-level
// directory, so each topic lives in one shard). It does no I/O.
func New(n *coord.Node, prefix string) *PubSub {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("pubsub: crypto/rand failed: %v", err))
	}
	return &PubSub{n: n, prefix: strings.TrimSuffix(prefix, "/") + "/", id: hex.EncodeToString(b[:])}
}

func validTopic(t string) error {
	if t == "" || strings.ContainsAny(t, "/\x00") {
		return fmt.Errorf("%w: topic %q must be non-empty, without '/'", ErrInvalid, t)
	}
	return nil
}

func (p *PubSub) messages(topic string) string { return p.prefix + topic + "/m/" }
func (p *PubSub) meta(topic string) string     { return p.prefix + topic + "/meta/" }

// encode prefixes the payload with the publish time.
func encode(t time.Time, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint64(b, uint64(t.UnixNano()))
	return append(b, payload...)
}

// toMessages turns the message keys of whole revisions, in (revision, key)
// order, into messages with offsets.
func toMessages(topic string, kvs []*coord.KeyValue) []Message {
	out := make([]Message, 0, len(kvs))
	eachMessage(topic, kvs, func(_ *coord.KeyValue, m Message) bool {
		out = append(out, m)
		return true
	})
	return out
}

// eachMessage calls f with each message of kvs, message keys of whole
// revisions in (revision, key) order, and its key, until f returns false.
func eachMessage(topic string, kvs []*coord.KeyValue, f func(*coord.KeyValue, Message) bool) {
	idx := 0
	for i, kv := range kvs {
		if i > 0 && kvs[i-1].CreateRevision == kv.CreateRevision {
			idx++
		} else {
			idx = 0
		}
		if len(kv.Value) < 8 || idx >= 1<<batchBits {
			continue
		}
		m := Message{Topic: topic, Offset: offsetOf(kv.CreateRevision, idx),
			Time:    time.Unix(0, int64(binary.BigEndian.Uint64(kv.Value[:8]))),
			Payload: kv.Value[8:]}
		if !f(kv, m) {
			return
		}
	}
}

// sortByRevision puts message keys read in key order in (revision, key)
// order: offset order. Sorting what was read here, rather than with
// coord.WithSort, spares the store copying and sorting every key in range.
func sortByRevision(kvs []*coord.KeyValue) {
	sort.Slice(kvs, func(i, j int) bool {
		if kvs[i].CreateRevision != kvs[j].CreateRevision {
			return kvs[i].CreateRevision < kvs[j].CreateRevision
		}
		return kvs[i].Key < kvs[j].Key
	})
}

func (p *PubSub) newKey(topic string) string {
	return fmt.Sprintf("%s%s-%016x", p.messages(topic), p.id, p.seq.Add(1))
}

// Publish appends payload to topic and returns its offset once it is
// durable: it blocks for one write through Raft (plus, with WithMsgID, a
// local read of the topic's settings and now and then a lease grant), or
// until ctx ends. Options: WithMsgID. Errors: ErrInvalid, and those of
// coord's Put and Txn; a message whose Publish returned
// coord.ErrOutcomeUnknown may or may not be published (publish it again
// with the same WithMsgID to be sure it is published once). Safe for
// concurrent use.
func (p *PubSub) Publish(ctx context.Context, topic string, payload []byte, opts ...PublishOption) (Offset, error) {
	if err := validTopic(topic); err != nil {
		return 0, err
	}
	var c publishConfig
	for _, o := range opts {
		o(&c)
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.msgID != "" {
		return p.publishOnce(ctx, topic, payload, c.msgID)
	}
	r, err := p.n.Put(ctx, p.newKey(topic), encode(time.Now(), payload))
	if err != nil {
		return 0, err
	}
	return offsetOf(r.Header.Revision, 0), nil
}

// PublishBatch appends payloads to topic in one atomic write, in order,
// with consecutive offsets, and returns the first. At most the cluster's
// Config.MaxTxnOps messages (128 by default) per batch. Blocking and errors
// as for Publish (coord.ErrTooManyOps for a batch over MaxTxnOps); a batch
// is not deduplicated. Safe for concurrent use.
func (p *PubSub) PublishBatch(ctx context.Context, topic string, payloads [][]byte) (Offset, error) {
	if err := validTopic(topic); err != nil {
		return 0, err
	}
	if len(payloads) == 0 || len(payloads) >= 1<<batchBits {
		return 0, fmt.Errorf("%w: a batch holds 1 to %d messages", ErrInvalid, 1<<batchBits-1)
	}
	now := time.Now()
	ops := make([]coord.Op, len(payloads))
	for i, pl := range payloads {
		ops[i] = coord.OpPut(p.newKey(topic), encode(now, pl))
	}
	r, err := p.n.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return 0, err
	}
	return offsetOf(r.Header.Revision, 0), nil
}
