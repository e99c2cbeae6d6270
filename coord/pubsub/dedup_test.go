package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord/coordtest"
)

// TestPublishWithMsgIDStoresOnceWithinTheWindow: a message ID published
// again within the topic's window stores nothing and returns the first
// offset; IDs are per topic; after the window the ID stores a new message.
func TestPublishWithMsgIDStoresOnceWithinTheWindow(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	ps := New(c.Node(0), "/topics")
	// The shortest window a test cluster's leases allow: 1.2s, held by a
	// lease of 1.5s.
	const window = 1200 * time.Millisecond
	if err := ps.SetRetention(ctx, "x", Retention{DuplicateWindow: window}); err != nil {
		t.Fatal(err)
	}
	pub := func(topic, payload, id string) Offset {
		t.Helper()
		o, err := ps.Publish(ctx, topic, []byte(payload), WithMsgID(id))
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	first := pub("x", "a", "id-1")
	stored := time.Now()
	if again := pub("x", "a-again", "id-1"); again != first {
		t.Fatalf("a duplicate returned offset %d, want the first's %d", again, first)
	}
	other := pub("x", "b", "id-2")
	if other == first {
		t.Fatal("another ID got the first ID's offset")
	}
	if o := pub("y", "a", "id-1"); o == first {
		t.Fatal("an ID of topic x deduplicated a message of topic y")
	}
	if st, _ := ps.Stats(ctx, "x"); st.Messages != 2 {
		t.Fatalf("%d messages stored, want 2 (a and b)", st.Messages)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub := ps.Subscribe(sctx, "x", FromEarliest())
	for _, want := range []string{"a", "b"} {
		if d := <-sub; d.Err != nil || string(d.Payload) != want {
			t.Fatalf("delivery %+v, want %q", d, want)
		}
	}

	// Past the window the ID is forgotten: publishing it stores a message.
	var later Offset
	coordtest.Eventually(t, 10*time.Second, func() bool {
		later = pub("x", "later", "id-1")
		return later != first
	}, "the message ID was never forgotten")
	held := time.Since(stored)
	if held < window {
		t.Fatalf("the ID was forgotten after %v, within its %v window", held, window)
	}
	t.Logf("a %v window: the ID was forgotten after %v", window, held)
	if d := <-sub; d.Err != nil || d.Offset != later || string(d.Payload) != "later" {
		t.Fatalf("after the window: %+v, want the new message at %d", d, later)
	}
	if st, _ := ps.Stats(ctx, "x"); st.Messages != 3 {
		t.Fatalf("%d messages stored, want 3: the duplicates within the window stored nothing", st.Messages)
	}

	for _, id := range []string{"", strings.Repeat("x", maxMsgIDBytes+1)} {
		if _, err := ps.Publish(ctx, "x", nil, WithMsgID(id)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("message ID of %d bytes: %v, want ErrInvalid", len(id), err)
		}
	}
	if err := ps.SetRetention(ctx, "x", Retention{DuplicateWindow: -time.Second}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative window: %v", err)
	}
}

// TestConcurrentPublishesOfOneMsgIDStoreOneMessage: clients on every member
// publishing the same ID at once store one message and all get its offset.
func TestConcurrentPublishesOfOneMsgIDStoreOneMessage(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	const ids, clients = 30, 6
	offsets := make([][]Offset, ids)
	for i := range offsets {
		offsets[i] = make([]Offset, clients)
	}
	var wg sync.WaitGroup
	for k := 0; k < clients; k++ {
		ps := New(c.Node(k%3), "/topics")
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			for i := range offsets {
				o, err := ps.Publish(ctx, "orders", []byte(fmt.Sprintf("order %d from client %d", i, k)), WithMsgID(fmt.Sprint("order-", i)))
				if err != nil {
					t.Error(err)
					return
				}
				offsets[i][k] = o
			}
		}(k)
	}
	wg.Wait()
	seen := map[Offset]bool{}
	for i, os := range offsets {
		for _, o := range os {
			if o != os[0] {
				t.Fatalf("ID %d: clients got offsets %v, want one", i, os)
			}
		}
		if seen[os[0]] {
			t.Fatalf("two IDs got offset %d", os[0])
		}
		seen[os[0]] = true
	}
	st, err := New(c.Node(1), "/topics").Stats(ctx, "orders")
	if err != nil || st.Messages != ids {
		t.Fatalf("stats %+v (%v), want %d messages", st, err, ids)
	}
}
