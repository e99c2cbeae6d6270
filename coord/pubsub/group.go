package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
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
// batch again and gets its messages redelivered (at-least-once), one at a
// time, counting their deliveries on (see MaxDeliveries). Safe for
// concurrent use.
type GroupMember struct {
	ackWait time.Duration
	cfg     consumerConfig
	who     string // "group NAME", as dead letters name it
	cur     atomic.Pointer[batch]
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
	// taken over from a member that died or left: delivered one message at a
	// time, with its deliveries and Acks recorded in the store
	orphan bool
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
	gm := &GroupMember{ackWait: c.ackWait, cfg: c, who: "group " + group, p: p, topic: topic,
		dir: p.meta(topic) + "groups/" + group + "/", s: s,
		id: fmt.Sprintf("%016x", uint64(s.Lease())), out: make(chan Delivery, 64), t: newTracker(),
		acks: make(chan struct{}, 1), cancel: cancel, ended: make(chan struct{})}
	resend := func(m Message, again bool) bool {
		gm.handOut(rctx, m, 0, again) // one not recorded stays pending: tried at its next deadline
		return rctx.Err() == nil
	}
	dead := p.deadLetterer(c, gm.who, gm.Ack)
	deliver(rctx, cancel, gm.out, gm.ended, gm.run, func(ctx context.Context) { redeliver(ctx, gm.t, c, resend, dead) })
	return gm, nil
}

// handOut delivers m as its delivery number max(deliveries so far, prior)+1.
// A delivery after the first is recorded in the store first, under the
// batch's claim, so that the member taking the batch over if this one dies
// counts on. A redelivery (again) of a message acknowledged meanwhile is
// dropped. Errors: ctx's, or the recording's (the message is then not
// delivered).
func (gm *GroupMember) handOut(ctx context.Context, m Message, prior int, again bool) error {
	b := gm.cur.Load()
	n := max(gm.t.count(m.Offset), prior) + 1
	if again && n == 1 {
		return nil // acknowledged meanwhile
	}
	if n > 1 {
		if b == nil || m.Offset < b.from || m.Offset > b.to {
			return nil // of a batch already retired
		}
		if err := gm.record(ctx, b, m.Offset, strconv.Itoa(n)); err != nil {
			return err
		}
	}
	if !gm.t.delivered(m, gm.ackWait, n, again) {
		return nil
	}
	select {
	case gm.out <- Delivery{Message: m, Deliveries: n}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deliveriesKey is where a group records a message's deliveries, or
// "acked", while its batch is claimed.
func (gm *GroupMember) deliveriesKey(o Offset) string { return gm.dir + "deliveries/" + batchName(o) }

// acked is the record of a message acknowledged in a batch taken over.
const acked = "acked"

// record sets the deliveries record of o on the condition that b is still
// this member's claim: a member that lost its claim (its session expired)
// must not write over the counts of the member that took over.
func (gm *GroupMember) record(ctx context.Context, b *batch, o Offset, v string) error {
	return retrying(ctx, func() error {
		r, err := gm.p.n.Txn(ctx).If(coord.Compare(coord.CreateRevision(b.claim), "=", b.claimRev)).
			Then(coord.OpPut(gm.deliveriesKey(o), []byte(v))).Commit()
		if err == nil && !r.Succeeded {
			return fmt.Errorf("%w: the member's claim on the batch at %d is gone", coord.ErrSessionExpired, b.from)
		}
		return err
	})
}

// records reads b's deliveries records: counts by offset, -1 for acked.
func (gm *GroupMember) records(ctx context.Context, b *batch) (map[Offset]int, error) {
	var g *coord.GetResponse
	err := retrying(ctx, func() (err error) {
		g, err = gm.p.n.Get(ctx, gm.deliveriesKey(b.from), coord.WithRange(gm.deliveriesKey(b.to+1)))
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[Offset]int{}
	for _, kv := range g.KVs {
		o, _ := strconv.ParseInt(strings.TrimPrefix(kv.Key, gm.dir+"deliveries/"), 10, 64)
		if string(kv.Value) == acked {
			out[Offset(o)] = -1
			continue
		}
		n, _ := strconv.Atoi(string(kv.Value))
		out[Offset(o)] = n
	}
	return out, nil
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

func (gm *GroupMember) run(ctx context.Context) error {
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
			if err := gm.process(ctx, b); err != nil {
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
			return &batch{from: Offset(from), to: Offset(to), claim: claim, claimRev: r.Header.Revision, orphan: true}, 0, nil
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
func (gm *GroupMember) process(ctx context.Context, b *batch) error {
	gm.cur.Store(b)
	var recs map[Offset]int
	if b.orphan {
		var err error
		if recs, err = gm.records(ctx, b); err != nil {
			return err
		}
	}
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
			if b.orphan {
				err = gm.carefully(ctx, b, m, recs[m.Offset])
			} else {
				err = gm.handOut(ctx, m, 0, false)
			}
			if err != nil {
				return err
			}
			from = m.Offset + 1
		}
		if !more || len(msgs) == 0 || msgs[len(msgs)-1].Offset >= b.to {
			break
		}
	}
	if err := gm.settled(ctx); err != nil {
		return err
	}
	// Retire the batch. The compare makes a repeat after an unknown outcome
	// harmless: once applied, the claim is gone and the compare fails.
	n := gm.p.n
	return retrying(ctx, func() error {
		_, err := n.Txn(ctx).If(coord.Compare(coord.CreateRevision(b.claim), "=", b.claimRev)).
			Then(coord.OpDelete(gm.dir+"batch/"+strings.TrimPrefix(b.claim, gm.dir+"claim/")), coord.OpDelete(b.claim),
				coord.OpDelete(gm.deliveriesKey(b.from), coord.WithRange(gm.deliveriesKey(b.to+1)))).Commit()
		return err
	})
}

// carefully delivers m, of a batch taken over, alone: rec is its record
// (its deliveries so far, -1 if acknowledged). The member that died had
// received it, so it counts as delivered at least once. Past MaxDeliveries
// it goes to the dead-letter topic undelivered.
func (gm *GroupMember) carefully(ctx context.Context, b *batch, m Message, rec int) error {
	if rec < 0 {
		return nil
	}
	prior := max(rec, 1)
	if limit := gm.cfg.maxDeliveries; limit > 0 && prior >= limit {
		if err := retrying(ctx, func() error { return gm.p.publishDeadLetter(ctx, gm.cfg, gm.who, m, prior) }); err != nil {
			return err
		}
		return gm.record(ctx, b, m.Offset, acked)
	}
	if err := gm.handOut(ctx, m, prior, false); err != nil {
		return err
	}
	if err := gm.settled(ctx); err != nil {
		return err
	}
	return gm.record(ctx, b, m.Offset, acked)
}

// settled waits until every message delivered is acknowledged (or, past
// MaxDeliveries, dead-lettered).
func (gm *GroupMember) settled(ctx context.Context) error {
	for gm.t.outstanding() > 0 {
		select {
		case <-gm.acks:
		case <-gm.s.Done():
			return fmt.Errorf("%w: %w", coord.ErrSessionExpired, gm.s.Err())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
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
