package pubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord/coordtest"
)

// TestRetentionRunnerTrimsIdleTopicsFromTheLeader: with a runner on every
// member, a topic nobody publishes to any more is trimmed by age, by the
// member that leads the topics' shard only, each message removed and
// counted once; when the leadership moves, the new leader's runner takes
// over.
func TestRetentionRunnerTrimsIdleTopicsFromTheLeader(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	const maxAge = time.Second
	ps := New(c.Node(0), "/topics")
	if err := ps.SetRetention(ctx, "idle", Retention{MaxAge: maxAge}); err != nil {
		t.Fatal(err)
	}
	publish := func(n int) time.Time {
		before := time.Now()
		for i := 0; i < n; i++ {
			if _, err := ps.Publish(ctx, "idle", []byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		return before
	}
	before := publish(5)

	type trim struct {
		member, removed int
		at              time.Time
	}
	var mu sync.Mutex
	var trims []trim
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		p := New(c.Node(i), "/topics")
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := p.RunRetention(rctx, 50*time.Millisecond, OnTrim(func(topic string, n int, err error) {
				if err != nil && !transient(rctx, err) {
					t.Errorf("member %d: trim of %s: %v", i, topic, err)
				}
				mu.Lock()
				trims = append(trims, trim{member: i, removed: n, at: time.Now()})
				mu.Unlock()
			}))
			if !errors.Is(err, context.Canceled) {
				t.Errorf("member %d: RunRetention ended with %v, want context.Canceled", i, err)
			}
		}(i)
	}
	defer func() { stop(); wg.Wait() }()

	shard := c.Node(0).ShardOf("/topics/")
	// waitTrimmed waits until the topic holds nothing and retention removed
	// want messages in all, and checks that the runners reported fresh of
	// them since the last call, all trimmed by member leader, after maxAge.
	waitTrimmed := func(want int64, fresh, leader int, notBefore time.Time) {
		t.Helper()
		coordtest.Eventually(t, 20*time.Second, func() bool {
			st, err := ps.Stats(ctx, "idle")
			return err == nil && st.Messages == 0 && st.Removed >= want
		}, "the idle topic was not trimmed")
		st, err := ps.Stats(ctx, "idle")
		if err != nil || st.Removed != want || st.First != 0 || st.Bytes != 0 {
			t.Fatalf("stats %+v (%v), want %d removed and nothing left", st, err, want)
		}
		mu.Lock()
		defer mu.Unlock()
		sum := 0
		for _, tr := range trims {
			if tr.member != leader {
				t.Fatalf("member %d trimmed, but member %d leads: %+v", tr.member, leader, trims)
			}
			if !tr.at.After(notBefore.Add(maxAge)) {
				t.Fatalf("trimmed at %v, before the messages were %v old", tr.at.Sub(notBefore), maxAge)
			}
			sum += tr.removed
		}
		if sum != fresh {
			t.Fatalf("runners reported %d removals, want %d: %+v", sum, fresh, trims)
		}
		trims = nil
	}
	leader := c.WaitLeader(shard)
	waitTrimmed(5, 5, leader, before)

	// The leadership moves: the new leader's runner trims what is published
	// next, the former leader's does not.
	next := (leader + 1) % 3
	if err := c.Node(next).MoveLeader(ctx, shard, c.Config(next).Name); err != nil {
		t.Fatal(err)
	}
	before = publish(3)
	waitTrimmed(8, 3, next, before)
}

// TestConcurrentTrimsRemoveAndCountEachMessageOnce: Trims racing from every
// member, as two runners do while the leadership moves, remove each message
// once, count it once, and keep batches whole.
func TestConcurrentTrimsRemoveAndCountEachMessageOnce(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	ps := New(c.Node(0), "/topics")
	offs := publishBatches(t, ps, "logs", 30, 10)
	// Keeping 55 cuts a batch: it goes whole, so 50 stay.
	if err := ps.SetRetention(ctx, "logs", Retention{MaxMessages: 55}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	removed := make([]int, 6)
	for i := range removed {
		p := New(c.Node(i%3), "/topics")
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			n, err := p.Trim(ctx, "logs")
			if err != nil {
				t.Error(err)
			}
			removed[i] = n
		}(i)
	}
	wg.Wait()
	sum := 0
	for _, n := range removed {
		sum += n
	}
	st, err := ps.Stats(ctx, "logs")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("removed per Trim: %v", removed)
	if sum != 250 || st.Removed != 250 || st.Messages != 50 || st.Bytes != 150 || st.First != offs[250] || st.Last != offs[299] {
		t.Fatalf("Trims removed %d in all; stats %+v; want 250 removed, 50 kept from offset %d to %d", sum, st, offs[250], offs[299])
	}
	if n := coordtest.Count(t, c.Node(1), ps.messages("logs")); n != 50 {
		t.Fatalf("%d messages stored, want 50", n)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d := <-ps.Subscribe(sctx, "logs", FromEarliest()); d.Err != nil || d.Offset != offs[250] || string(d.Payload) != "250" {
		t.Fatalf("the oldest retained message is %+v, want 250", d)
	}
}

// TestStatsAddUpPublishesAndTrims: Stats is exact before any Trim, after
// one brought the counters up to date, with messages published since, and
// after retention removed some, batches whole.
func TestStatsAddUpPublishesAndTrims(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	ps := New(c.Node(0), "/topics")
	stats := func(want Stats) {
		t.Helper()
		st, err := ps.Stats(ctx, "s")
		if err != nil || st != want {
			t.Fatalf("stats %+v (%v), want %+v", st, err, want)
		}
	}
	stats(Stats{})
	pub := func(payload string) Offset {
		t.Helper()
		o, err := ps.Publish(ctx, "s", []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	a, _, _ := pub("a"), pub("bb"), pub("ccc")
	d, err := ps.PublishBatch(ctx, "s", [][]byte{[]byte("d"), []byte("e"), []byte("f"), []byte("g")})
	if err != nil {
		t.Fatal(err)
	}
	stats(Stats{Messages: 7, Bytes: 10, First: a, Last: d + 3})
	if n, err := ps.Trim(ctx, "s"); err != nil || n != 0 {
		t.Fatalf("Trim without retention: %d, %v", n, err)
	}
	stats(Stats{Messages: 7, Bytes: 10, First: a, Last: d + 3})
	h, i := pub("hh"), pub("i")
	stats(Stats{Messages: 9, Bytes: 13, First: a, Last: i})
	// Keeping 4 cuts the batch d..g: it goes whole.
	if err := ps.SetRetention(ctx, "s", Retention{MaxMessages: 4}); err != nil {
		t.Fatal(err)
	}
	if n, err := ps.Trim(ctx, "s"); err != nil || n != 7 {
		t.Fatalf("Trim removed %d (%v), want 7", n, err)
	}
	stats(Stats{Messages: 2, Bytes: 3, First: h, Last: i, Removed: 7})
	j := pub("j")
	stats(Stats{Messages: 3, Bytes: 4, First: h, Last: j, Removed: 7})
}

// BenchmarkStats reads the stats of a topic of 100 and of 10,000 messages
// whose counters are up to date (as RunRetention keeps them), plus 10
// messages published since: the cost must not grow with the topic.
func BenchmarkStats(b *testing.B) {
	for _, size := range []int{100, 10000} {
		b.Run(fmt.Sprintf("messages=%d", size), func(b *testing.B) {
			c := coordtest.New(b, 1)
			ctx := coordtest.Context(b, 5*time.Minute)
			ps := New(c.Node(0), "/topics")
			batch := make([][]byte, 100)
			for i := range batch {
				batch[i] = make([]byte, 100)
			}
			for n := 0; n < size; n += len(batch) {
				if _, err := ps.PublishBatch(ctx, "t", batch); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := ps.Trim(ctx, "t"); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < 10; i++ {
				if _, err := ps.Publish(ctx, "t", batch[0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				st, err := ps.Stats(ctx, "t")
				if err != nil || st.Messages != size+10 {
					b.Fatalf("stats %+v, %v", st, err)
				}
			}
		})
	}
}
