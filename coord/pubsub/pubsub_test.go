package pubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context { return coordtest.Context(t, 90*time.Second) }

func TestEverySubscriberGetsEveryMessageInOrder(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	const total, publishers = 10000, 30
	subs := make([]<-chan Delivery, 3)
	for i := range subs {
		subs[i] = New(c.Node(i), "/topics").Subscribe(ctx, "orders")
	}
	published := make(chan Offset, total)
	var wg sync.WaitGroup
	for w := 0; w < publishers; w++ {
		ps := New(c.Node(w%3), "/topics")
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < total/publishers+1; i++ {
				if w*(total/publishers+1)+i >= total {
					return
				}
				o, err := ps.Publish(ctx, "orders", []byte(fmt.Sprintf("%d-%d", w, i)))
				if err != nil {
					t.Error(err)
					return
				}
				published <- o
			}
		}(w)
	}
	wg.Wait()
	close(published)
	want := map[Offset]bool{}
	for o := range published {
		if want[o] {
			t.Fatalf("offset %d returned twice", o)
		}
		want[o] = true
	}
	if len(want) != total {
		t.Fatalf("%d publishes succeeded, want %d", len(want), total)
	}
	for i, sub := range subs {
		var last Offset
		for n := 0; n < total; n++ {
			select {
			case d := <-sub:
				if d.Err != nil {
					t.Fatalf("subscriber %d: %v", i, d.Err)
				}
				if d.Offset <= last {
					t.Fatalf("subscriber %d: offset %d after %d", i, d.Offset, last)
				}
				if !want[d.Offset] {
					t.Fatalf("subscriber %d: offset %d was never published", i, d.Offset)
				}
				last = d.Offset
			case <-time.After(30 * time.Second):
				t.Fatalf("subscriber %d got %d of %d messages", i, n, total)
			}
		}
	}
}

func TestSubscriptionStartsAndBatches(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	ps := New(c.Node(0), "/topics")
	first, err := ps.PublishBatch(ctx, "t", [][]byte{[]byte("a"), []byte("b"), []byte("c")})
	if err != nil {
		t.Fatal(err)
	}
	mid := time.Now()
	second, err := ps.Publish(ctx, "t", []byte("d"))
	if err != nil {
		t.Fatal(err)
	}
	read := func(opts ...SubscribeOption) []string {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var got []string
		sub := ps.Subscribe(sctx, "t", opts...)
		for len(got) < 10 {
			select {
			case d := <-sub:
				if d.Err != nil {
					t.Fatal(d.Err)
				}
				got = append(got, fmt.Sprintf("%s@%d", d.Payload, d.Offset-first))
			case <-time.After(500 * time.Millisecond): // bounded look: nothing more to come
				return got
			}
		}
		return got
	}
	if got := fmt.Sprint(read(FromEarliest())); got != fmt.Sprintf("[a@0 b@1 c@2 d@%d]", second-first) {
		t.Fatalf("from earliest: %s", got)
	}
	if got := fmt.Sprint(read(FromOffset(first + 1))); got != fmt.Sprintf("[b@1 c@2 d@%d]", second-first) {
		t.Fatalf("from offset: %s", got)
	}
	if got := fmt.Sprint(read(FromTime(mid))); got != fmt.Sprintf("[d@%d]", second-first) {
		t.Fatalf("from time: %s", got)
	}
	if got := read(); len(got) != 0 {
		t.Fatalf("from now: %v", got)
	}
	if _, err := ps.Publish(ctx, "a/b", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("topic with a slash: %v", err)
	}
}

func TestDurableConsumerResumesAfterLastAckAcrossRestart(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	ps := New(c.Node(0), "/topics")
	var offs []Offset
	for i := 0; i < 10; i++ {
		o, err := ps.Publish(ctx, "jobs", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, o)
	}
	cons, err := New(c.Node(1), "/topics").Consumer(ctx, "jobs", "worker")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		d := <-cons.Messages()
		if d.Err != nil || d.Offset != offs[i] {
			t.Fatalf("delivery %d: %+v", i, d)
		}
		if err := cons.Ack(ctx, d.Message); err != nil {
			t.Fatal(err)
		}
	}
	d5 := <-cons.Messages() // delivered, never acknowledged
	if err := cons.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := drain(t, cons.Messages()); err != nil {
		t.Fatalf("after Close: %v", err)
	}
	c.Stop(1)
	n := c.Restart(1)
	cons, err = New(n, "/topics").Consumer(ctx, "jobs", "worker")
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	d := <-cons.Messages()
	if d.Err != nil || d.Offset != offs[4] || d.Offset != d5.Offset {
		t.Fatalf("after restart the consumer resumed at %+v, want offset %d (the first unacknowledged)", d, offs[4])
	}
	// Unacknowledged messages come again after AckWait.
	quick, err := New(n, "/topics").Consumer(ctx, "jobs", "quick", AckWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer quick.Close(ctx)
	first := <-quick.Messages()
	for {
		d := <-quick.Messages()
		if d.Err != nil {
			t.Fatal(d.Err)
		}
		if d.Offset == first.Offset {
			break // redelivered
		}
	}
	// The Node's closing ends both consumers: an item with its error, then
	// their channels close.
	c.Stop(1)
	for _, ch := range []<-chan Delivery{cons.Messages(), quick.Messages()} {
		if err := drain(t, ch); !errors.Is(err, coord.ErrClosed) {
			t.Fatalf("consumer on a closed Node ended with %v, want coord.ErrClosed", err)
		}
	}
}

// drain reads ch until it is closed, within 10 s, and returns the error of
// its last item with one.
func drain(t *testing.T, ch <-chan Delivery) error {
	t.Helper()
	var last error
	timeout := time.After(10 * time.Second)
	for {
		select {
		case d, ok := <-ch:
			if !ok {
				return last
			}
			if d.Err != nil {
				last = d.Err
			}
		case <-timeout:
			t.Fatal("Messages was not closed within 10 s")
		}
	}
}

// publishBatches publishes batches batches of size messages to topic, the
// decimal numbers from 0 as payloads, and returns their offsets in order.
func publishBatches(t *testing.T, ps *PubSub, topic string, batches, size int) []Offset {
	t.Helper()
	ctx := ctxT(t)
	var offs []Offset
	for b := 0; b < batches; b++ {
		batch := make([][]byte, size)
		for i := range batch {
			batch[i] = []byte(fmt.Sprint(b*size + i))
		}
		o, err := ps.PublishBatch(ctx, topic, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i := range batch {
			offs = append(offs, o+Offset(i))
		}
	}
	return offs
}

func runGroup(t *testing.T, closeOne bool) (map[Offset]int, []int) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	ps := New(c.Node(0), "/topics")
	const total = 10000
	all := publishBatches(t, ps, "work", total/100, 100)
	var mu sync.Mutex
	seen := map[Offset]int{}
	var errs []error // a member's stream ended with an error: the group may stall
	perMember := make([]int, 3)
	done := make(chan struct{})
	members := make([]*GroupMember, 3)
	for i := range members {
		m, err := New(c.Node(i), "/topics").JoinGroup(ctx, "work", "g", AckWait(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		members[i] = m
	}
	// The member that dies is the shard's leader, so the survivors also ride
	// out a leader change: reads and claims that fail with a timeout or an
	// unknown outcome must be retried, not end a member with its claim held.
	victim := -1
	if closeOne {
		victim = c.WaitLeader(0)
	}
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func(i int, m *GroupMember) {
			defer wg.Done()
			for {
				select {
				case d, ok := <-m.Messages():
					if !ok {
						return
					}
					if d.Err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("member %d: %w", i, d.Err))
						mu.Unlock()
						return
					}
					mu.Lock()
					seen[d.Offset]++
					perMember[i]++
					n := len(seen)
					mu.Unlock()
					if i == victim && n > total/3 {
						return // this member dies mid-batch: its claim is left unfinished
					}
					time.Sleep(50 * time.Microsecond) // the message's work
					m.Ack(ctx, d.Message)
					if n == total {
						select {
						case <-done:
						default:
							close(done)
						}
					}
				case <-done:
					return
				case <-ctx.Done():
					return
				}
			}
		}(i, m)
	}
	if closeOne {
		go func() {
			for {
				mu.Lock()
				n := len(seen)
				mu.Unlock()
				if n > total/3 {
					c.Stop(victim) // the victim's node closes: its session and claims go
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		mu.Lock()
		t.Fatalf("group processed %d of %d messages; member errors: %v", len(seen), total, errs)
	}
	wg.Wait()
	for i, m := range members {
		if err := m.Close(ctx); err != nil && i != victim {
			t.Fatalf("member %d: Close: %v", i, err)
		}
		if err := drain(t, m.Messages()); err != nil && i != victim {
			t.Fatalf("member %d: after Close: %v", i, err)
		}
	}
	for _, o := range all {
		if seen[o] == 0 {
			t.Fatalf("message %d never processed", o)
		}
	}
	return seen, perMember
}

func TestConsumerGroupExactlyOnceWhenNobodyDies(t *testing.T) {
	seen, per := runGroup(t, false)
	for o, n := range seen {
		if n != 1 {
			t.Fatalf("message %d processed %d times", o, n)
		}
	}
	t.Logf("messages per member: %v", per)
	for i, n := range per {
		if n == 0 {
			t.Fatalf("member %d processed nothing: the group did not share the work (%v)", i, per)
		}
	}
}

func TestConsumerGroupAtLeastOnceWhenAMemberCloses(t *testing.T) {
	seen, _ := runGroup(t, true)
	again := 0
	for _, n := range seen {
		if n > 1 {
			again++
		}
	}
	t.Logf("%d messages redelivered after a member closed mid-batch", again)
}

func TestRetentionRemovesOldMessagesAndOldOffsetsFailClearly(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	ps := New(c.Node(0), "/topics")
	// Before anything was removed, every offset is available: offset 0
	// starts at the first message.
	first0, err := ps.Publish(ctx, "fresh", []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if d := <-ps.Subscribe(ctx, "fresh", FromOffset(0)); d.Err != nil || d.Offset != first0 {
		t.Fatalf("FromOffset(0) on an untrimmed topic: %+v", d)
	}
	if err := ps.SetRetention(ctx, "logs", Retention{MaxMessages: 50}); err != nil {
		t.Fatal(err)
	}
	first, _ := ps.Publish(ctx, "logs", []byte("0"))
	for i := 1; i < 200; i++ {
		if _, err := ps.Publish(ctx, "logs", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ps.Trim(ctx, "logs"); err != nil {
		t.Fatal(err)
	}
	st, err := ps.Stats(ctx, "logs")
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 50 || st.Removed != 150 {
		t.Fatalf("stats after retention: %+v, want 50 kept and 150 removed", st)
	}
	d := <-ps.Subscribe(ctx, "logs", FromOffset(first))
	var oor *OutOfRangeError
	if !errors.Is(d.Err, ErrOffsetOutOfRange) || !errors.As(d.Err, &oor) || oor.Earliest != st.First {
		t.Fatalf("subscribing to a removed offset: %v, want an OutOfRangeError naming %d", d.Err, st.First)
	}
	t.Log(d.Err)
	// The earliest retained offset still works.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d := <-ps.Subscribe(sctx, "logs", FromOffset(st.First)); d.Err != nil || d.Offset != st.First || string(d.Payload) != "150" {
		t.Fatalf("from the earliest retained offset: %+v", d)
	}
}

func TestRetentionByBytesAndAge(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	ps := New(c.Node(0), "/topics")
	// Bytes: ten 10-byte messages, keep at most 35 bytes: the newest three.
	if err := ps.SetRetention(ctx, "bytes", Retention{MaxBytes: 35}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := ps.Publish(ctx, "bytes", []byte(fmt.Sprintf("message-%02d", i)[:10])); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := ps.Trim(ctx, "bytes"); err != nil || n != 7 {
		t.Fatalf("trim by bytes removed %d (%v), want 7", n, err)
	}
	if st, _ := ps.Stats(ctx, "bytes"); st.Messages != 3 || st.Bytes != 30 {
		t.Fatalf("after trim by bytes: %+v", st)
	}
	// Age: messages older than the limit go, newer ones stay.
	if err := ps.SetRetention(ctx, "age", Retention{MaxAge: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		ps.Publish(ctx, "age", []byte("old"))
	}
	time.Sleep(400 * time.Millisecond) // the first five age past the limit: time must pass
	ps.Publish(ctx, "age", []byte("new"))
	if n, err := ps.Trim(ctx, "age"); err != nil || n != 5 {
		t.Fatalf("trim by age removed %d (%v), want 5", n, err)
	}
	if err := ps.SetRetention(ctx, "x", Retention{MaxMessages: -1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative retention: %v", err)
	}
}

// A claim whose write returned an unknown outcome but was applied carries
// the member's own ID while the member is between batches. claimOrphan must
// hand it back to the member: nobody else may take it while the member's
// session lives, so skipping it would stall the group for good.
func TestGroupMemberResumesItsOwnClaimAfterAnUnknownOutcome(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	ps := New(c.Node(0), "/topics")
	s := coordtest.Session(t, c.Node(0), 5*time.Second)
	other := coordtest.Session(t, c.Node(0), 5*time.Second)
	dir := ps.meta("work") + "groups/g/"
	gm := &GroupMember{p: ps, topic: "work", dir: dir, s: s, id: fmt.Sprintf("%016x", uint64(s.Lease()))}
	claim := func(from, to Offset, owner *coord.Session, id string) coord.Revision {
		t.Helper()
		r, err := c.Node(0).Txn(ctx).Then(
			coord.OpPut(dir+"batch/"+batchName(from), []byte(fmt.Sprint(int64(to)))),
			coord.OpPut(dir+"claim/"+batchName(from), []byte(id), coord.WithLease(owner.Lease())),
		).Commit()
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision
	}
	claim(1<<batchBits, 2<<batchBits, other, fmt.Sprintf("%016x", uint64(other.Lease())))
	if b, _, err := gm.claimOrphan(ctx); err != nil || b != nil {
		t.Fatalf("a batch claimed by a live other member was taken: %+v, %v", b, err)
	}
	rev := claim(3<<batchBits, 4<<batchBits, s, gm.id)
	b, _, err := gm.claimOrphan(ctx)
	if err != nil || b == nil {
		t.Fatalf("the member's own applied claim was not resumed: %+v, %v", b, err)
	}
	if b.from != 3<<batchBits || b.to != 4<<batchBits || b.claimRev != rev {
		t.Fatalf("resumed batch %+v, want from %d to %d claimed at %d", b, 3<<batchBits, 4<<batchBits, rev)
	}
}
