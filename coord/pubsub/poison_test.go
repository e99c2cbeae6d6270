package pubsub

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord/coordtest"
)

// TestPoisonMessageGoesToTheDeadLetterTopic: a message the consumer never
// acknowledges is delivered MaxDeliveries times, then lands in the
// dead-letter topic with the reason and the count, and the consumer moves
// past it: a restart does not deliver it again. The same for a group.
func TestPoisonMessageGoesToTheDeadLetterTopic(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	p := New(c.Node(0), "/topics")
	for _, payload := range []string{"good-1", "poison", "good-2"} {
		if _, err := p.Publish(ctx, "jobs", []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := p.Consumer(ctx, "jobs", "worker", AckWait(100*time.Millisecond), MaxDeliveries(3, ""))
	if err != nil {
		t.Fatal(err)
	}
	poisonDeliveries := 0
	deadline := time.After(20 * time.Second)
	dl := New(c.Node(1), "/topics").Subscribe(ctx, "jobs-dead-letter", FromEarliest())
	var dead *DeadLetter
	for dead == nil {
		select {
		case d := <-cs.Messages():
			if d.Err != nil {
				t.Fatal(d.Err)
			}
			if string(d.Payload) == "poison" {
				poisonDeliveries++
				if d.Deliveries != poisonDeliveries {
					t.Fatalf("delivery %d of the poison message says %d", poisonDeliveries, d.Deliveries)
				}
				continue // never acknowledged
			}
			if err := cs.Ack(ctx, d.Message); err != nil {
				t.Fatal(err)
			}
		case d := <-dl:
			if d.Err != nil {
				t.Fatal(d.Err)
			}
			if dead, err = ParseDeadLetter(d.Message); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatalf("no dead letter after %d deliveries of the poison message", poisonDeliveries)
		}
	}
	if poisonDeliveries != 3 || dead.Deliveries != 3 || string(dead.Payload) != "poison" || dead.Topic != "jobs" ||
		dead.Consumer != "consumer worker" || dead.Reason == "" {
		t.Fatalf("%d deliveries; dead letter %+v", poisonDeliveries, dead)
	}
	// The dead letter is published before the message is acknowledged (a
	// failed publish leaves it pending): wait for the saved position.
	coordtest.Eventually(t, 10*time.Second, func() bool {
		g, err := c.Node(0).Get(ctx, p.meta("jobs")+"consumers/worker")
		if err != nil || len(g.KVs) == 0 {
			return false
		}
		v, _ := strconv.ParseInt(string(g.KVs[0].Value), 10, 64)
		return Offset(v) >= dead.Offset
	}, "the consumer's position never passed the dead-lettered message")
	if err := cs.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Restarted, the consumer resumes after the poison message.
	cs, err = p.Consumer(ctx, "jobs", "worker", AckWait(100*time.Millisecond), MaxDeliveries(3, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(ctx)
	p.Publish(ctx, "jobs", []byte("after"))
	select {
	case d := <-cs.Messages():
		if string(d.Payload) != "after" {
			t.Fatalf("after a restart the consumer got %q first, want the next message", d.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing after the restart")
	}

	// A group member, with a dead-letter topic of its own.
	gp := New(c.Node(2), "/topics")
	gp.Publish(ctx, "tasks", []byte("poison"))
	gm, err := gp.JoinGroup(ctx, "tasks", "g", AckWait(100*time.Millisecond), MaxDeliveries(2, "tasks-failed"))
	if err != nil {
		t.Fatal(err)
	}
	defer gm.Close(ctx)
	gdl := gp.Subscribe(ctx, "tasks-failed", FromEarliest())
	for {
		select {
		case d := <-gm.Messages():
			if d.Err != nil {
				t.Fatal(d.Err)
			}
			continue
		case d := <-gdl:
			dl, err := ParseDeadLetter(d.Message)
			if err != nil || dl.Deliveries != 2 || dl.Consumer != "group g" {
				t.Fatalf("group dead letter: %+v %v", dl, err)
			}
			return
		case <-time.After(20 * time.Second):
			t.Fatal("the group's poison message never reached its dead-letter topic")
		}
	}
}

// TestNakAndInProgress: Nak redelivers after its delay and not before;
// InProgress keeps a long task's message from being redelivered.
func TestNakAndInProgress(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	p := New(c.Node(0), "/topics")
	p.Publish(ctx, "work", []byte("slow"))
	const ackWait = 300 * time.Millisecond
	cs, err := p.Consumer(ctx, "work", "w", AckWait(ackWait))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(ctx)
	first := <-cs.Messages()
	// InProgress every 100ms for three AckWaits: no redelivery meanwhile.
	until := time.Now().Add(3 * ackWait)
	for time.Now().Before(until) {
		cs.InProgress(first.Message)
		select {
		case d := <-cs.Messages():
			t.Fatalf("redelivered while in progress: %+v", d)
		case <-time.After(100 * time.Millisecond):
		}
	}
	naked := time.Now()
	cs.Nak(first.Message, time.Second)
	select {
	case d := <-cs.Messages():
		if took := time.Since(naked); took < time.Second || d.Deliveries != 2 {
			t.Fatalf("redelivered after %v (delivery %d), want after the 1s delay, delivery 2", took, d.Deliveries)
		}
		cs.Ack(ctx, d.Message)
	case <-time.After(10 * time.Second):
		t.Fatal("a Nak'ed message was never redelivered")
	}
}

// TestGroupCountsDeliveriesAcrossMemberDeaths: a message that kills every
// group member it reaches is counted in the store, so each member that
// takes it over counts on, and after MaxDeliveries members it goes to the
// dead-letter topic undelivered. Its neighbours are not dragged along: an
// acknowledged one is not delivered again, one behind it is delivered.
func TestGroupCountsDeliveriesAcrossMemberDeaths(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	p := New(c.Node(0), "/topics")
	for _, payload := range []string{"good-1", "poison", "good-2"} {
		if _, err := p.Publish(ctx, "crash", []byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	opts := []ConsumerOption{AckWait(time.Minute), MaxDeliveries(3, ""), MemberTTL(2 * time.Second)}
	next := func(gm *GroupMember) Delivery {
		t.Helper()
		select {
		case d := <-gm.Messages():
			if d.Err != nil {
				t.Fatal(d.Err)
			}
			return d
		case <-time.After(20 * time.Second):
			t.Fatal("no delivery within 20 s")
		}
		return Delivery{}
	}
	// work plays a member that acknowledges good messages and dies on the
	// poison, which must come as delivery number want.
	work := func(gm *GroupMember, want int, goods ...string) {
		t.Helper()
		for _, g := range goods {
			if d := next(gm); string(d.Payload) != g {
				t.Fatalf("got %q (delivery %d), want %q", d.Payload, d.Deliveries, g)
			} else if err := gm.Ack(ctx, d.Message); err != nil {
				t.Fatal(err)
			}
		}
		if d := next(gm); string(d.Payload) != "poison" || d.Deliveries != want {
			t.Fatalf("got %q as delivery %d, want the poison as delivery %d", d.Payload, d.Deliveries, want)
		}
	}
	// The first member's process dies: its Node stops, its session expires.
	a, err := New(c.Node(2), "/topics").JoinGroup(ctx, "crash", "g", opts...)
	if err != nil {
		t.Fatal(err)
	}
	work(a, 1, "good-1")
	c.Stop(2)
	drain(t, a.Messages())
	// The next two die by closing: their batch is released at once. The
	// first takes the batch over: good-1 again (at-least-once), then the
	// poison; the second does not see good-1, acknowledged while taken over.
	for i, goods := range [][]string{{"good-1"}, nil} {
		gm, err := New(c.Node(i), "/topics").JoinGroup(ctx, "crash", "g", opts...)
		if err != nil {
			t.Fatal(err)
		}
		work(gm, 2+i, goods...)
		if err := gm.Close(ctx); err != nil {
			t.Fatal(err)
		}
		drain(t, gm.Messages())
	}
	// The fourth gets good-2, not the poison, which lands in the dead-letter
	// topic with its three deliveries.
	gm, err := p.JoinGroup(ctx, "crash", "g", opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer gm.Close(ctx)
	if d := next(gm); string(d.Payload) != "good-2" || d.Deliveries != 2 {
		t.Fatalf("after the poison was dead-lettered: %q as delivery %d, want good-2 as delivery 2", d.Payload, d.Deliveries)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dl := <-p.Subscribe(sctx, "crash-dead-letter", FromEarliest())
	if dl.Err != nil {
		t.Fatal(dl.Err)
	}
	dead, err := ParseDeadLetter(dl.Message)
	if err != nil || string(dead.Payload) != "poison" || dead.Deliveries != 3 || dead.Consumer != "group g" {
		t.Fatalf("dead letter %+v (%v), want the poison after 3 deliveries", dead, err)
	}
}
