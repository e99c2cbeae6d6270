package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testErrs = &Errors{Lost: errors.New("test: lost"), NotHeld: errors.New("test: not held"), Locked: errors.New("test: locked")}

// lockAt acquires the queue dir as a mutex does.
func lockAt(ctx context.Context, s *coord.Session, dir string) (*Hold, error) {
	return Acquire(ctx, s, dir, dir, nil, testErrs)
}

func ctxT(t *testing.T) context.Context { return coordtest.Context(t, 60*time.Second) }

func TestFIFOAndReleaseWakesOnlyTheNext(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	holder, err := lockAt(ctx, coordtest.Session(t, c.Node(0), time.Minute), "/fifo/lock/")
	if err != nil {
		t.Fatal(err)
	}
	const waiters = 10
	order := make(chan int, waiters)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < waiters; i++ {
		s := coordtest.Session(t, c.Node(i%3), time.Minute)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h, err := lockAt(ctx, s, "/fifo/lock/")
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			<-release
			h.Release(ctx)
		}(i)
		// Queue strictly one after the other.
		coordtest.Eventually(t, 10*time.Second, func() bool { return coordtest.Count(t, c.Node(0), "/fifo/lock/") == int64(i+2) },
			"waiter %d never queued", i)
	}
	before := wakeups.Load()
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if first := <-order; first != 0 {
		t.Fatalf("first waiter to acquire: %d, want 0", first)
	}
	// Give a herd every chance to show: the others must still be asleep.
	coordtest.Eventually(t, 5*time.Second, func() bool { return wakeups.Load()-before >= 1 }, "nobody woke")
	time.Sleep(200 * time.Millisecond) // a bounded look for extra wakeups, not a wait for state
	if woke := wakeups.Load() - before; woke != 1 {
		t.Fatalf("one release woke %d waiters, want 1", woke)
	}
	close(release)
	for want := 1; want < waiters; want++ {
		if got := <-order; got != want {
			t.Fatalf("acquisition %d went to waiter %d", want, got)
		}
	}
	wg.Wait()
}

// Regression: a session revoked between a waiter's enqueue and its first
// look at the queue used to leave Lock waiting until the session's next
// keep-alive (a third of its TTL).
func TestSessionRevokedRightAfterEnqueue(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	if _, err := lockAt(ctx, coordtest.Session(t, c.Node(0), time.Minute), "/early/lock/"); err != nil {
		t.Fatal(err)
	}
	s := coordtest.Session(t, c.Node(1), time.Minute)
	afterEnqueue = func() {
		if err := c.Node(2).Revoke(ctx, s.Lease()); err != nil {
			t.Error(err)
		}
	}
	defer func() { afterEnqueue = nil }()
	got := make(chan error, 1)
	go func() {
		_, err := lockAt(ctx, s, "/early/lock/")
		got <- err
	}()
	select {
	case err := <-got:
		if !errors.Is(err, coord.ErrSessionExpired) {
			t.Fatalf("Acquire: %v, want ErrSessionExpired", err)
		}
	case <-time.After(10 * time.Second): // the bug waited 20s (TTL/3)
		t.Fatal("Acquire kept waiting after its session was revoked")
	}
}
