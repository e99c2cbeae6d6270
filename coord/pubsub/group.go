package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// groupBatch is how many messages a group member claims at a time (rounded
// up to a whole revision).
const groupBatch = 64

// GroupMember is one member of a consumer group: the members of a group
// share a topic's messages, each message going to one member. A member
// claims a batch of messages at a time under its own session; if it dies (or
// closes) before acknowledging the whole batch, another member claims the
// batch again and gets its messages redelivered (at-least-once). Safe for
// concurrent use.
type GroupMember struct {
	ackWait time.Duration
	p       *PubSub
	topic   string
	dir     string
	s       *coord.Session
	id      string
	out     chan Delivery
	t       *tracker
	acks    chan struct{}
	cancel  context.CancelFunc
	ended   chan struct{} // closed with out, once the member's goroutines ended
}

type batch struct {
	from, to Offset
	claim    string
	claimRev coord.Revision
}

// JoinGroup adds a member to the consumer group named group on topic. The
// group starts at the earliest retained message the first time any member
// joins. ctx bounds only the join. Errors: ErrInvalid, those of
// coord.NewSession.
func (p *PubSub) JoinGroup(ctx context.Context, topic, group string, opts ...ConsumerOption) (*GroupMember, error) {
	if err := validTopic(topic); err != nil {
		return nil, err
	}
	if err := validTopic(group); err != nil {
		return nil, fmt.Errorf("%w: group name %q", ErrInvalid, group)
	}
	c := consumerDefaults(opts)
	s, err := p.n.NewSession(ctx, coord.WithTTL(c.ttl))
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	gm := &GroupMember{ackWait: c.ackWait, p: p, topic: topic, dir: p.meta(topic) + "groups/" + group + "/", s: s,
		id: fmt.Sprintf("%016x", uint64(s.Lease())), out: make(chan Delivery, 64), t: newTracker(),
		acks: make(chan struct{}, 1), cancel: cancel, ended: make(chan struct{})}
	send := func(m Message) bool {
		n := gm.t.delivered(m, c.ackWait)
		select {
		case gm.out <- Delivery{Message: m, Deliveries: n}:
			return true
		case <-rctx.Done():
			return false
		}
	}
	dead := p.deadLetterer(c, "group "+group, gm.Ack)
	deliver(rctx, cancel, gm.out, gm.ended, func(ctx context.Context) error { return gm.run(ctx, send) },
		func(ctx context.Context) { redeliver(ctx, gm.t, c, send, dead) })
	return gm, nil
}

// Messages delivers the member's messages. It is closed when the member
// ends: after Close, or after an item with Err (its session expired, the
// Node closed, ...).
func (gm *GroupMember) Messages() <-chan Delivery { return gm.out }

// Ack acknowledges m. When the member's current batch is all acknowledged,
// the batch is done for the whole group.
func (gm *GroupMember) Ack(ctx context.Context, m Message) error {
	if _, ok := gm.t.ack(m.Offset); ok {
		select {
		case gm.acks <- struct{}{}:
		default:
		}
	}
	return nil
}

// Nak asks for m to be delivered again after delay, as a failed attempt
// (see Consumer.Nak).
func (gm *GroupMember) Nak(m Message, delay time.Duration) { gm.t.due(m.Offset, delay) }

// InProgress puts off m's redelivery for another AckWait (see
// Consumer.InProgress).
func (gm *GroupMember) InProgress(m Message) { gm.t.due(m.Offset, gm.ackWait) }

// Close leaves the group and closes Messages: the member's session is
// closed, so a batch it had not finished goes to another member at once.
// It blocks until the member's goroutines ended and its session's lease is
// revoked, or ctx ends. Errors: ctx's, those of coord's Revoke.
func (gm *GroupMember) Close(ctx context.Context) error {
	gm.cancel()
	select {
	case <-gm.ended:
	case <-ctx.Done():
		return ctx.Err()
	}
	return gm.s.Close(ctx)
}

func batchName(o Offset) string { return fmt.Sprintf("%020d", int64(o)) }

func (gm *GroupMember) run(ctx context.Context, send func(Message) bool) error {
	for ctx.Err() == nil {
		if gm.s.Err() != nil {
			return fmt.Errorf("%w: %w", coord.ErrSessionExpired, gm.s.Err())
		}
		b, at, err := gm.claimOrphan(ctx)
		if err == nil && b == nil {
			b, at, err = gm.claimNew(ctx)
		}
		if errors.Is(err, errRetry) {
			continue // another member moved the cursor first
		}
		if err != nil {
			if gm.s.Err() != nil {
				continue // reported as the session's expiry above
			}
			if !transient(ctx, err) {
				return err
			}
			if err := retryPause(ctx, 0); err != nil {
				return err
			}
			continue
		}
		if b != nil {
			if err := gm.process(ctx, b, send); err != nil {
				return err
			}
			continue
		}
		if err := gm.waitWork(ctx, at); err != nil {
			return err
		}
	}
	return nil
}

// claimOrphan takes over a batch whose claimant is gone.
func (gm *GroupMember) claimOrphan(ctx context.Context) (*batch, coord.Revision, error) {
	n := gm.p.n
	bs, err := n.Get(ctx, gm.dir+"batch/", coord.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	cs, err := n.Get(ctx, gm.dir+"claim/", coord.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	claimed := map[string]*coord.KeyValue{}
	for _, kv := range cs.KVs {
		claimed[strings.TrimPrefix(kv.Key, gm.dir+"claim/")] = kv
	}
	for _, kv := range bs.KVs {
		name := strings.TrimPrefix(kv.Key, gm.dir+"batch/")
		from, _ := strconv.ParseInt(name, 10, 64)
		to, _ := strconv.ParseInt(string(kv.Value), 10, 64)
		claim := gm.dir + "claim/" + name
		if c := claimed[name]; c != nil {
			if string(c.Value) == gm.id {
				// Ours, yet this member processes one batch at a time and
				// is between batches: a claim whose write timed out (an
				// unknown outcome) but was applied. Resume it, or nobody
				// would while this session lives.
				return &batch{from: Offset(from), to: Offset(to), claim: claim, claimRev: c.CreateRevision}, 0, nil
			}
			continue
		}
		r, err := n.Txn(ctx).If(coord.Compare(coord.CreateRevision(claim), "=", 0),
			coord.Compare(coord.CreateRevision(kv.Key), "=", kv.CreateRevision)).
			Then(coord.OpPut(claim, []byte(gm.id), coord.WithLease(gm.s.Lease()))).Commit()
		if err != nil {
			return nil, 0, err
		}
		if r.Succeeded {
			return &batch{from: Offset(from), to: Offset(to), claim: claim, claimRev: r.Header.Revision}, 0, nil
		}
	}
	return nil, bs.Header.Revision, nil
}

// claimNew claims the next messages after the group's cursor.
func (gm *GroupMember) claimNew(ctx context.Context) (*batch, coord.Revision, error) {
	n := gm.p.n
	cursor := gm.dir + "cursor"
	g, err := n.Get(ctx, cursor)
	if err != nil {
		return nil, 0, err
	}
	var from Offset
	var rev coord.Revision
	if len(g.KVs) > 0 {
		v, _ := strconv.ParseInt(string(g.KVs[0].Value), 10, 64)
		from, rev = Offset(v), g.KVs[0].ModRevision
	}
	msgs, at, _, err := gm.p.page(ctx, gm.topic, from)
	if err != nil {
		return nil, 0, err
	}
	if len(msgs) == 0 {
		return nil, at, nil
	}
	k := min(groupBatch, len(msgs))
	for k < len(msgs) && msgs[k].Offset.revision() == msgs[k-1].Offset.revision() {
		k++
	}
	b := &batch{from: msgs[0].Offset, to: msgs[k-1].Offset, claim: gm.dir + "claim/" + batchName(msgs[0].Offset)}
	r, err := n.Txn(ctx).If(coord.Compare(coord.ModRevision(cursor), "=", rev)).Then(
		coord.OpPut(cursor, []byte(strconv.FormatInt(int64(b.to)+1, 10))),
		coord.OpPut(gm.dir+"batch/"+batchName(b.from), []byte(strconv.FormatInt(int64(b.to), 10))),
		coord.OpPut(b.claim, []byte(gm.id), coord.WithLease(gm.s.Lease())),
	).Commit()
	if err != nil {
		return nil, 0, err
	}
	if !r.Succeeded {
		return nil, 0, errRetry // another member moved the cursor first
	}
	b.claimRev = r.Header.Revision
	return b, 0, nil
}

var errRetry = errors.New("pubsub: retry")

// process delivers a batch's messages and waits until all are acknowledged,
// then retires the batch for the group.
func (gm *GroupMember) process(ctx context.Context, b *batch, send func(Message) bool) error {
	for from := b.from; from <= b.to; {
		var msgs []Message
		var more bool
		err := retrying(ctx, func() (err error) {
			msgs, _, more, err = gm.p.page(ctx, gm.topic, from)
			return err
		})
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Offset > b.to {
				break
			}
			if !send(m) {
				return ctx.Err()
			}
			from = m.Offset + 1
		}
		if !more || len(msgs) == 0 || msgs[len(msgs)-1].Offset >= b.to {
			break
		}
	}
	for gm.t.outstanding() > 0 {
		select {
		case <-gm.acks:
		case <-gm.s.Done():
			return fmt.Errorf("%w: %w", coord.ErrSessionExpired, gm.s.Err())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Retire the batch. The compare makes a repeat after an unknown outcome
	// harmless: once applied, the claim is gone and the compare fails.
	n := gm.p.n
	return retrying(ctx, func() error {
		_, err := n.Txn(ctx).If(coord.Compare(coord.CreateRevision(b.claim), "=", b.claimRev)).
			Then(coord.OpDelete(gm.dir+"batch/"+strings.TrimPrefix(b.claim, gm.dir+"claim/")), coord.OpDelete(b.claim)).Commit()
		return err
	})
}

// waitWork waits for a new message or a released claim after revision at.
func (gm *GroupMember) waitWork(ctx context.Context, at coord.Revision) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := gm.p.n
	msgs := n.Watch(wctx, gm.p.messages(gm.topic), coord.WithPrefix(), coord.WithRev(at+1), coord.WithFilterDelete())
	claims := n.Watch(wctx, gm.dir+"claim/", coord.WithPrefix(), coord.WithRev(at+1), coord.WithFilterPut())
	timer := time.NewTimer(time.Second) // a safety net: re-read the group now and then
	defer timer.Stop()
	select {
	case r, ok := <-msgs:
		if !ok || r.Err() != nil {
			return closedOr(ctx, r.Err())
		}
	case r, ok := <-claims:
		if !ok || r.Err() != nil {
			return closedOr(ctx, r.Err())
		}
	case <-timer.C:
	case <-gm.s.Done():
		return fmt.Errorf("%w: %w", coord.ErrSessionExpired, gm.s.Err())
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func closedOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil && !errors.Is(err, coord.ErrCompacted) {
		return err
	}
	return nil
}
