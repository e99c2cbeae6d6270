package pubsub

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"
)

// ConsumerOption configures a durable consumer or a group member.
type ConsumerOption func(*consumerConfig)

type consumerConfig struct {
	ackWait       time.Duration
	start         []SubscribeOption
	ttl           time.Duration
	maxDeliveries int
	deadLetter    string
}

// AckWait redelivers a message not acknowledged within d. Default 30s.
func AckWait(d time.Duration) ConsumerOption { return func(c *consumerConfig) { c.ackWait = d } }

// StartAt sets where a durable consumer starts the first time, before it
// has acknowledged anything. Default FromEarliest.
func StartAt(o SubscribeOption) ConsumerOption {
	return func(c *consumerConfig) { c.start = []SubscribeOption{o} }
}

// MemberTTL sets a group member's session TTL: how long after its process
// dies its unacknowledged messages go to another member. Default 10s.
func MemberTTL(d time.Duration) ConsumerOption { return func(c *consumerConfig) { c.ttl = d } }

// MaxDeliveries stops redelivering a message after n deliveries that did
// not end in an Ack: the message is published to the dead-letter topic
// (default: the topic's name followed by "-dead-letter"), wrapped in a
// DeadLetter that says why and how often it was delivered, and then
// acknowledged, so the consumer moves past it. Default: no limit.
//
// A consumer group counts deliveries in the store: when a member dies (or
// closes) with messages unacknowledged, the member that takes its batch
// over counts on from there, so a message that kills every member it
// reaches is dead-lettered after n of them. A message the dead member had
// received counts as delivered to it, as in JetStream, even if the
// application never read it; the member taking over delivers the batch one
// message at a time, recording each delivery and each Ack, so only the
// message in hand is counted when a member dies. A durable Consumer counts
// in memory: its counts start again when it restarts.
func MaxDeliveries(n int, deadLetterTopic string) ConsumerOption {
	return func(c *consumerConfig) { c.maxDeliveries, c.deadLetter = n, deadLetterTopic }
}

func consumerDefaults(opts []ConsumerOption) consumerConfig {
	c := consumerConfig{ackWait: 30 * time.Second, ttl: 10 * time.Second, start: []SubscribeOption{FromEarliest()}}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// tracker remembers delivered, unacknowledged messages for redelivery.
type tracker struct {
	mu      sync.Mutex
	pending map[Offset]*pendingMsg
	acked   map[Offset]bool
	order   []Offset // delivered offsets, ascending, not yet committed
}

type pendingMsg struct {
	m          Message
	deadline   time.Time
	deliveries int
}

func newTracker() *tracker {
	return &tracker{pending: map[Offset]*pendingMsg{}, acked: map[Offset]bool{}}
}

// count returns how many times o has been delivered while pending: 0 when
// it is not pending.
func (t *tracker) count(o Offset) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.pending[o]; ok {
		return p.deliveries
	}
	return 0
}

// delivered records delivery number n of m, due for redelivery after wait.
// A redelivery (again) of a message no longer pending, acknowledged
// meanwhile, is not recorded: delivered reports false.
func (t *tracker) delivered(m Message, wait time.Duration, n int, again bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.pending[m.Offset]
	if !ok {
		if again {
			return false
		}
		t.order = append(t.order, m.Offset)
		p = &pendingMsg{m: m}
		t.pending[m.Offset] = p
	}
	p.deadline = time.Now().Add(wait)
	p.deliveries = n
	return true
}

// due sets m's redelivery for d from now, if m is pending; it reports
// whether it was.
func (t *tracker) due(o Offset, d time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.pending[o]
	if ok {
		p.deadline = time.Now().Add(d)
	}
	return ok
}

// ack marks o done and returns the new commit point: the highest offset at
// and below which everything delivered is acknowledged (0 if unchanged).
func (t *tracker) ack(o Offset) (Offset, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.pending[o]; !ok {
		return 0, false
	}
	delete(t.pending, o)
	t.acked[o] = true
	var commit Offset
	for len(t.order) > 0 && t.acked[t.order[0]] {
		commit = t.order[0]
		delete(t.acked, commit)
		t.order = t.order[1:]
	}
	return commit, true
}

// overdue returns the pending messages past their deadline, with their
// delivery counts, and sets their next deadline after wait.
func (t *tracker) overdue(wait time.Duration) []pendingMsg {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	var out []pendingMsg
	for _, p := range t.pending {
		if now.After(p.deadline) {
			p.deadline = now.Add(wait)
			out = append(out, *p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].m.Offset < out[j].m.Offset })
	return out
}

func (t *tracker) outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// Consumer is a named, durable subscriber: it resumes after a restart from
// its last acknowledged offset. Delivery is at-least-once: a message not
// acknowledged within AckWait is delivered again, and after a restart the
// messages after the last contiguous acknowledgement are. Safe for
// concurrent use.
type Consumer struct {
	p       *PubSub
	topic   string
	key     string
	ackWait time.Duration
	out     chan Delivery
	t       *tracker
	cancel  context.CancelFunc
	ended   chan struct{} // closed with out, once the consumer's goroutines ended
}

// Consumer starts (or resumes) the durable consumer name on topic. ctx
// bounds only the start. Errors: ErrInvalid, an *OutOfRangeError when its
// saved position is no longer retained, those of coord's Get.
func (p *PubSub) Consumer(ctx context.Context, topic, name string, opts ...ConsumerOption) (*Consumer, error) {
	if err := validTopic(topic); err != nil {
		return nil, err
	}
	if err := validTopic(name); err != nil {
		return nil, fmt.Errorf("%w: consumer name %q", ErrInvalid, name)
	}
	c := consumerDefaults(opts)
	key := p.meta(topic) + "consumers/" + name
	g, err := p.n.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	start := c.start
	if len(g.KVs) > 0 {
		v, _ := strconv.ParseInt(string(g.KVs[0].Value), 10, 64)
		start = []SubscribeOption{FromOffset(Offset(v) + 1)}
	}
	from, err := p.start(ctx, topic, start)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	cs := &Consumer{p: p, topic: topic, key: key, ackWait: c.ackWait, out: make(chan Delivery, 64), t: newTracker(), cancel: cancel,
		ended: make(chan struct{})}
	send := func(m Message, again bool) bool {
		n := cs.t.count(m.Offset) + 1
		if !cs.t.delivered(m, c.ackWait, n, again) {
			return true // acknowledged meanwhile
		}
		select {
		case cs.out <- Delivery{Message: m, Deliveries: n}:
			return true
		case <-rctx.Done():
			return false
		}
	}
	dead := p.deadLetterer(c, "consumer "+name, cs.Ack)
	deliver(rctx, cancel, cs.out, cs.ended, func(ctx context.Context) error {
		return p.stream(ctx, topic, from, func(m Message) bool { return send(m, false) })
	},
		func(ctx context.Context) { redeliver(ctx, cs.t, c, send, dead) })
	return cs, nil
}

// deliver runs a consumer's or group member's work until ctx ends or run
// fails: run delivers new messages on out, again redelivers overdue ones.
// run's error goes out as a last item; then both stop, and out is closed,
// and ended after it.
func deliver(ctx context.Context, cancel context.CancelFunc, out chan Delivery, ended chan struct{},
	run func(context.Context) error, again func(context.Context)) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := run(ctx); err != nil && ctx.Err() == nil {
			select {
			case out <- Delivery{Err: err}:
			case <-ctx.Done():
			}
		}
		cancel()
	}()
	go func() {
		defer wg.Done()
		again(ctx)
	}()
	go func() {
		wg.Wait()
		close(out)
		close(ended)
	}()
}

// redeliver sends the overdue messages again (send with again true), or,
// past MaxDeliveries, hands them to dead. It returns when ctx ends or send
// returns false.
func redeliver(ctx context.Context, t *tracker, c consumerConfig, send func(m Message, again bool) bool, dead func(context.Context, Message, int)) {
	tick := time.NewTicker(min(max(c.ackWait/4, 10*time.Millisecond), 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			for _, p := range t.overdue(c.ackWait) {
				if c.maxDeliveries > 0 && p.deliveries >= c.maxDeliveries {
					dead(ctx, p.m, p.deliveries)
					continue
				}
				if !send(p.m, true) {
					return
				}
			}
		}
	}
}

// Messages delivers the consumer's messages. It is closed when the
// consumer ends: after Close, or after an item with Err (the Node closed,
// the consumer's position is no longer retained, ...).
func (c *Consumer) Messages() <-chan Delivery { return c.out }

// Ack acknowledges m and, when that completes a contiguous run, saves the
// consumer's position durably. Acknowledging a message twice is a no-op.
func (c *Consumer) Ack(ctx context.Context, m Message) error {
	commit, ok := c.t.ack(m.Offset)
	if !ok || commit == 0 {
		return nil
	}
	_, err := c.p.n.Put(ctx, c.key, []byte(strconv.FormatInt(int64(commit), 10)))
	return err
}

// Nak asks for m to be delivered again after delay (0: at once), as a
// failed attempt: it counts toward MaxDeliveries. A message already
// acknowledged is left alone.
func (c *Consumer) Nak(m Message, delay time.Duration) { c.t.due(m.Offset, delay) }

// InProgress tells the consumer that m is still being worked on: its
// redelivery is put off for another AckWait.
func (c *Consumer) InProgress(m Message) { c.t.due(m.Offset, c.ackWait) }

// Close stops the consumer and closes Messages; its saved position stays.
// It blocks until the consumer's goroutines ended, or ctx ends (ctx's
// error). It is idempotent.
func (c *Consumer) Close(ctx context.Context) error {
	c.cancel()
	select {
	case <-c.ended:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
