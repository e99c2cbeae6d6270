package queue_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/election"
	"github.com/coordkit/coordkit/coord/lock"
)

// contender is one lock or election value, seen through what the two
// share: a fair queue whose head holds.
type contender interface {
	acquire(ctx context.Context) error
	release(ctx context.Context) error
	fence() coord.Revision
	owner() coord.Cmp
	done() <-chan struct{}
	err() error
}

type mutex struct{ *lock.Mutex }

func (m mutex) acquire(ctx context.Context) error { return m.Lock(ctx) }
func (m mutex) release(ctx context.Context) error { return m.Unlock(ctx) }
func (m mutex) fence() coord.Revision             { return m.Fence() }
func (m mutex) owner() coord.Cmp                  { return m.IsOwner() }
func (m mutex) done() <-chan struct{}             { return m.Done() }
func (m mutex) err() error                        { return m.Err() }

type candidate struct{ *election.Election }

func (c candidate) acquire(ctx context.Context) error { return c.Campaign(ctx, []byte("v")) }
func (c candidate) release(ctx context.Context) error { return c.Resign(ctx) }
func (c candidate) fence() coord.Revision             { return c.Fence() }
func (c candidate) owner() coord.Cmp                  { return c.IsLeader() }
func (c candidate) done() <-chan struct{}             { return c.Done() }
func (c candidate) err() error                        { return c.Err() }

// primitive makes contenders of one kind, with the errors it reports.
type primitive struct {
	name          string
	new           func(s *coord.Session, name string) contender
	lost, notHeld error
}

var primitives = []primitive{
	{"lock.Mutex", func(s *coord.Session, name string) contender { return mutex{lock.NewMutex(s, name)} }, lock.ErrLost, lock.ErrNotHeld},
	{"election.Election", func(s *coord.Session, name string) contender { return candidate{election.New(s, name)} }, election.ErrLost, election.ErrNotLeader},
}

// The queue's contract, held by both primitives built on it: one holder at
// a time, served in arrival order, with strictly increasing fences; the
// owner compare guards writes; a waiter whose session ends, or whose
// context ends, leaves the queue with that error; a waiter or holder whose
// key is deleted gets the primitive's Lost error; a holder whose session
// ends loses its hold; a release after a loss is the primitive's NotHeld;
// a closed Node ends a waiter with ErrClosed.
func TestQueueConformance(t *testing.T) {
	c := coordtest.New(t, 3)
	for _, p := range primitives {
		t.Run(p.name, func(t *testing.T) { conform(t, c, p) })
	}
}

func conform(t *testing.T, c *coordtest.Cluster, p primitive) {
	ctx := coordtest.Context(t, 2*time.Minute)
	dir := "/conform/" + p.name
	session := func(i int) *coord.Session { return coordtest.Session(t, c.Node(i%3), time.Minute) }

	// Arrival order, one holder at a time, increasing fences.
	first := p.new(session(0), dir)
	if err := first.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	const waiters = 4
	order := make(chan int, waiters)
	fences := make([]coord.Revision, waiters)
	var holding sync.Mutex
	var wg sync.WaitGroup
	for i := range waiters {
		w := p.new(session(i+1), dir)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.acquire(ctx); err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			if !holding.TryLock() {
				t.Errorf("waiter %d holds while another does", i)
				return
			}
			fences[i] = w.fence()
			order <- i
			holding.Unlock()
			if err := w.release(ctx); err != nil {
				t.Errorf("waiter %d: release: %v", i, err)
			}
		}()
		coordtest.Eventually(t, 10*time.Second, func() bool { return coordtest.Count(t, c.Node(0), dir+"/") == int64(i+2) },
			"waiter %d never queued", i)
	}
	firstFence := first.fence()
	if err := first.release(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(order)
	want, prev := 0, firstFence
	for got := range order {
		if got != want {
			t.Fatalf("served waiter %d, want %d: not in arrival order", got, want)
		}
		if fences[got] <= prev {
			t.Fatalf("waiter %d's fence %d, not above %d", got, fences[got], prev)
		}
		prev = fences[got]
		want++
	}
	if want != waiters {
		t.Fatalf("%d of %d waiters served", want, waiters)
	}

	// The owner compare guards a write while held, and only then.
	h := p.new(session(0), dir)
	if err := h.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Node(1).Txn(ctx).If(h.owner()).Then(coord.OpPut(dir+"-guarded", []byte("x"))).Commit(); err != nil || !r.Succeeded {
		t.Fatalf("guarded write while held: %v, succeeded %v", err, r != nil && r.Succeeded)
	}

	// A waiter whose context ends, or whose session ends, leaves the queue.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := p.new(session(1), dir).acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter whose context ended: %v, want context.DeadlineExceeded", err)
	}
	ws := session(2)
	got := make(chan error, 1)
	go func() { got <- p.new(ws, dir).acquire(ctx) }()
	coordtest.Eventually(t, 10*time.Second, func() bool { return coordtest.Count(t, c.Node(0), dir+"/") == 2 }, "waiter never queued")
	if err := c.Node(0).Revoke(ctx, ws.Lease()); err != nil {
		t.Fatal(err)
	}
	if err := <-got; !errors.Is(err, coord.ErrSessionExpired) {
		t.Fatalf("waiter whose session ended: %v, want coord.ErrSessionExpired", err)
	}
	coordtest.Eventually(t, 10*time.Second, func() bool { return coordtest.Count(t, c.Node(0), dir+"/") == 1 }, "a waiter that left is still queued")

	// A waiter whose key is deleted gets Lost; so does the holder, and its
	// release is then NotHeld.
	go func() { got <- p.new(session(1), dir).acquire(ctx) }()
	coordtest.Eventually(t, 10*time.Second, func() bool { return coordtest.Count(t, c.Node(0), dir+"/") == 2 }, "waiter never queued")
	g, err := c.Node(0).Get(ctx, dir, coord.WithPrefix(), coord.WithSort(coord.SortByCreateRevision, coord.SortDescend), coord.WithLimit(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Node(0).Delete(ctx, g.KVs[0].Key); err != nil {
		t.Fatal(err)
	}
	if err := <-got; !errors.Is(err, p.lost) {
		t.Fatalf("waiter whose key was deleted: %v, want %v", err, p.lost)
	}
	if _, err := c.Node(0).Delete(ctx, dir, coord.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.done():
	case <-time.After(10 * time.Second):
		t.Fatal("a holder whose key was deleted still holds")
	}
	if !errors.Is(h.err(), p.lost) {
		t.Fatalf("holder whose key was deleted: Err %v, want %v", h.err(), p.lost)
	}
	if err := h.release(ctx); !errors.Is(err, p.notHeld) {
		t.Fatalf("release after a loss: %v, want %v", err, p.notHeld)
	}

	// A holder whose session ends loses its hold.
	hs := session(1)
	h = p.new(hs, dir)
	if err := h.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := hs.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.done():
	case <-time.After(10 * time.Second):
		t.Fatal("a holder whose session ended still holds")
	}
	if !errors.Is(h.err(), p.lost) {
		t.Fatalf("holder whose session ended: Err %v, want %v", h.err(), p.lost)
	}
	// A lost hold frees the value for a new acquisition.
	h2 := p.new(session(2), dir)
	if err := h2.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h2.release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A waiter on a Node that closes ends with ErrClosed, for both.
func TestQueueWaiterOnAClosedNode(t *testing.T) {
	for _, p := range primitives {
		t.Run(p.name, func(t *testing.T) {
			c := coordtest.New(t, 1)
			ctx := coordtest.Context(t, time.Minute)
			dir := "/closed/" + p.name
			if err := p.new(coordtest.Session(t, c.Node(0), time.Minute), dir).acquire(ctx); err != nil {
				t.Fatal(err)
			}
			got := make(chan error, 1)
			go func() { got <- p.new(coordtest.Session(t, c.Node(0), time.Minute), dir).acquire(ctx) }()
			coordtest.Eventually(t, 10*time.Second, func() bool { return coordtest.Count(t, c.Node(0), dir+"/") == 2 }, "waiter never queued")
			c.Node(0).Close()
			if err := <-got; !errors.Is(err, coord.ErrClosed) {
				t.Fatalf("waiter on a closed Node: %v, want coord.ErrClosed", err)
			}
		})
	}
}
