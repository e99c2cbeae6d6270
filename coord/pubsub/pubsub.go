// Package pubsub is durable publish/subscribe on coordkit, built on coord's
// public API only.
//
// A message is a key under prefix/topic/m/. Its offset is derived from the
// revision that created it (times 1024, plus its position when a batch
// created several), so offsets strictly increase within a topic; they are
// not consecutive, since other writes in the topic's shard use revisions too.
// Publish returns once the message is committed through Raft and fsynced on
// a quorum: unlike NATS's default, an acknowledged message survives the
// loss of any minority of members.
//
// Subscribe delivers every message from a starting point (now, an offset,
// the earliest retained, or a time) in offset order with no gap and no
// duplicate while connected. Durable consumers resume after a restart from
// their last acknowledged offset (at-least-once). Consumer groups share a
// topic: each message is processed by one member, and the messages of a
// member that dies are redelivered to another.
//
// A message that keeps failing does not block a consumer forever: with
// MaxDeliveries it goes, after that many deliveries without an Ack, to a
// dead-letter topic as a DeadLetter (the reason and the count), and the
// consumer moves past it. Nak asks for a delayed redelivery; InProgress
// puts off the redelivery of a long task.
package pubsub

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
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
	pubs   atomic.Uint64
	id     string
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
		out = append(out, Message{Topic: topic, Offset: offsetOf(kv.CreateRevision, idx),
			Time:    time.Unix(0, int64(binary.BigEndian.Uint64(kv.Value[:8]))),
			Payload: kv.Value[8:]})
	}
	return out
}

func (p *PubSub) newKey(topic string) string {
	return fmt.Sprintf("%s%s-%016x", p.messages(topic), p.id, p.seq.Add(1))
}

// Publish appends payload to topic and returns its offset once it is
// durable. Errors: ErrInvalid, and those of coord's Put (a message whose
// Publish returned coord.ErrOutcomeUnknown may or may not be published).
func (p *PubSub) Publish(ctx context.Context, topic string, payload []byte) (Offset, error) {
	if err := validTopic(topic); err != nil {
		return 0, err
	}
	r, err := p.n.Put(ctx, p.newKey(topic), encode(time.Now(), payload))
	if err != nil {
		return 0, err
	}
	p.maybeTrim(ctx, topic)
	return offsetOf(r.Header.Revision, 0), nil
}

// PublishBatch appends payloads to topic in one atomic write, in order,
// with consecutive offsets, and returns the first. At most the cluster's
// Config.MaxTxnOps messages (128 by default) per batch.
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
	p.maybeTrim(ctx, topic)
	return offsetOf(r.Header.Revision, 0), nil
}
