package lock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context { return coordtest.Context(t, 60*time.Second) }

// 30 contenders over 3 members each add 1 to a counter 100 times, under the
// lock, with the write guarded by IsOwner; a downstream check of the fencing
// token counts any guarded write that succeeded with a stale token.
func TestMutualExclusionWithFencing(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	const workers, rounds = 30, 100
	var mu sync.Mutex
	var highest coord.Revision
	stale := 0
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			n := c.Node(w % 3)
			s, err := n.NewSession(ctx, coord.WithTTL(30*time.Second))
			if err != nil {
				errs <- err
				return
			}
			defer s.Close(context.Background())
			m := NewMutex(s, "/counter/lock")
			for i := 0; i < rounds; i++ {
				if err := m.Lock(ctx); err != nil {
					errs <- err
					return
				}
				g, err := n.Get(ctx, "/counter/value")
				if err != nil {
					errs <- err
					return
				}
				v := 0
				if len(g.KVs) == 1 {
					v, _ = strconv.Atoi(string(g.KVs[0].Value))
				}
				r, err := n.Txn(ctx).If(m.IsOwner()).Then(coord.OpPut("/counter/value", []byte(strconv.Itoa(v+1)))).Commit()
				if err != nil || !r.Succeeded {
					errs <- fmt.Errorf("guarded write failed while holding the lock: %v %v", r, err)
					return
				}
				mu.Lock()
				if m.Fence() < highest {
					stale++
				}
				highest = max(highest, m.Fence())
				mu.Unlock()
				if err := m.Unlock(ctx); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	g, err := c.Node(0).Get(ctx, "/counter/value")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(g.KVs[0].Value); got != strconv.Itoa(workers*rounds) {
		t.Fatalf("counter = %s, want %d", got, workers*rounds)
	}
	if stale != 0 {
		t.Fatalf("%d guarded writes succeeded with a stale fence", stale)
	}
}

func TestHolderCutOffIsReplacedAfterTTLWithLargerFence(t *testing.T) {
	c := coordtest.New(t, 3, coordtest.WithPartitions())
	ctx := ctxT(t)
	leader := c.WaitLeader(0)
	victim := (leader + 1) % 3
	ttl := 2 * coordtest.ElectionTimeout
	held := NewMutex(coordtest.Session(t, c.Node(victim), ttl), "/crash/lock")
	if err := held.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	next := NewMutex(coordtest.Session(t, c.Node(leader), time.Minute), "/crash/lock")
	got := make(chan error, 1)
	go func() { got <- next.Lock(ctx) }()
	coordtest.Eventually(t, 10*time.Second, func() bool { return coordtest.Count(t, c.Node(leader), "/crash/lock/") == 2 }, "waiter never queued")
	start := time.Now()
	c.Isolate(victim) // its process is as good as gone: no keep-alive gets through
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("next holder acquired %v after the holder was cut off (TTL %v, election timeout %v)", took, ttl, coordtest.ElectionTimeout)
	if bound := ttl + 2*coordtest.ElectionTimeout + 2*time.Second; took > bound {
		t.Fatalf("took %v, more than TTL + election timeout (with slack: %v)", took, bound)
	}
	if next.Fence() <= held.Fence() {
		t.Fatalf("fence %d not above the lost holder's %d", next.Fence(), held.Fence())
	}
	c.Heal(victim)
	select {
	case <-held.Done():
		if !errors.Is(held.Err(), ErrLost) {
			t.Fatalf("lost holder's Err = %v", held.Err())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the cut-off holder never learnt it lost the lock")
	}
	if err := held.Unlock(ctx); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Unlock after loss: %v, want ErrNotHeld", err)
	}
	// The new holder's key survived the old holder's Unlock attempt.
	if coordtest.Count(t, c.Node(leader), "/crash/lock/") != 1 || next.Err() != nil {
		t.Fatal("the old holder's Unlock disturbed the new holder")
	}
}

func TestSessionExpiryOrCancelWhileWaiting(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	holder := NewMutex(coordtest.Session(t, c.Node(0), time.Minute), "/wait/lock")
	if err := holder.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	// Session expiry while waiting: Lock returns at once with an error.
	s := coordtest.Session(t, c.Node(1), time.Minute)
	w := NewMutex(s, "/wait/lock")
	got := make(chan error, 1)
	go func() { got <- w.Lock(ctx) }()
	coordtest.Eventually(t, 10*time.Second, func() bool { return coordtest.Count(t, c.Node(0), "/wait/lock/") == 2 }, "waiter never queued")
	if err := c.Node(2).Revoke(ctx, s.Lease()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, coord.ErrSessionExpired) {
			t.Fatalf("Lock after the session expired: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Lock kept waiting after its session expired")
	}
	// Cancel while waiting: the waiter's key is gone when Lock returns.
	w2 := NewMutex(coordtest.Session(t, c.Node(2), time.Minute), "/wait/lock")
	cctx, cancel := context.WithCancel(ctx)
	go func() { got <- w2.Lock(cctx) }()
	coordtest.Eventually(t, 10*time.Second, func() bool { return coordtest.Count(t, c.Node(0), "/wait/lock/") == 2 }, "waiter never queued")
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock after cancel: %v", err)
	}
	if n := coordtest.Count(t, c.Node(0), "/wait/lock/"); n != 1 {
		t.Fatalf("%d keys in the queue after a cancelled waiter left, want 1 (the holder)", n)
	}
}

func TestMisuse(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	s := coordtest.Session(t, c.Node(0), time.Minute)
	m := NewMutex(s, "/misuse/lock")
	if err := m.Unlock(ctx); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Unlock of a free Mutex: %v", err)
	}
	if err := m.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Lock(ctx); !errors.Is(err, ErrAlreadyHeld) {
		t.Fatalf("second Lock through one Mutex: %v", err)
	}
	// A second Mutex on the same session is another contender.
	other := NewMutex(s, "/misuse/lock")
	if err := other.TryLock(ctx); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLock by a second Mutex on the same session: %v", err)
	}
	if coordtest.Count(t, c.Node(0), "/misuse/lock/") != 1 {
		t.Fatal("a failed TryLock left its key behind")
	}
	if err := m.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.TryLock(ctx); err != nil {
		t.Fatalf("TryLock of a free lock: %v", err)
	}
	// A write guarded by a stale owner compare does not happen.
	stale := m.IsOwner()
	r, err := c.Node(0).Txn(ctx).If(stale).Then(coord.OpPut("/misuse/x", nil)).Commit()
	if err != nil || r.Succeeded {
		t.Fatalf("guarded write by a non-holder: %+v %v", r, err)
	}
	other.Unlock(ctx)
}

func TestRWMutexReadersShareWritersExclude(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	r1 := NewRWMutex(coordtest.Session(t, c.Node(0), time.Minute), "/rw/lock")
	r2 := NewRWMutex(coordtest.Session(t, c.Node(1), time.Minute), "/rw/lock")
	w := NewRWMutex(coordtest.Session(t, c.Node(2), time.Minute), "/rw/lock")
	r3 := NewRWMutex(coordtest.Session(t, c.Node(0), time.Minute), "/rw/lock")
	if err := r1.RLock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r2.RLock(ctx); err != nil { // readers overlap
		t.Fatal(err)
	}
	wgot := make(chan error, 1)
	go func() { wgot <- w.Lock(ctx) }()
	coordtest.Eventually(t, 10*time.Second, func() bool { return coordtest.Count(t, c.Node(0), "/rw/lock/w/") == 1 }, "writer never queued")
	// A reader arriving after a waiting writer waits too.
	rgot := make(chan error, 1)
	go func() { rgot <- r3.RLock(ctx) }()
	coordtest.Eventually(t, 10*time.Second, func() bool { return coordtest.Count(t, c.Node(0), "/rw/lock/r/") == 3 }, "late reader never queued")
	select {
	case <-wgot:
		t.Fatal("writer acquired while readers held the lock")
	case <-rgot:
		t.Fatal("a reader overtook a waiting writer")
	case <-time.After(300 * time.Millisecond): // a bounded look for a wrong acquisition
	}
	r1.Unlock(ctx)
	r2.Unlock(ctx)
	if err := <-wgot; err != nil {
		t.Fatal(err)
	}
	select {
	case <-rgot:
		t.Fatal("a reader acquired while the writer held the lock")
	case <-time.After(300 * time.Millisecond):
	}
	w.Unlock(ctx)
	if err := <-rgot; err != nil {
		t.Fatal(err)
	}
	r3.Unlock(ctx)
}

func TestSemaphoreNeverExceedsPermits(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	const permits, workers, rounds = 3, 9, 8
	var inside, peak atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		sem, err := NewSemaphore(coordtest.Session(t, c.Node(w%3), time.Minute), "/sem/pool", permits)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if err := sem.Acquire(ctx); err != nil {
					t.Error(err)
					return
				}
				now := inside.Add(1)
				for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
				}
				time.Sleep(5 * time.Millisecond) // hold the permit for a moment
				inside.Add(-1)
				if err := sem.Release(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > permits || p < 2 {
		t.Fatalf("peak holders %d, want 2..%d", p, permits)
	}
	if _, err := NewSemaphore(nil, "/sem/x", 0); err == nil {
		t.Fatal("a semaphore with no permits was accepted")
	}
}
