package election

import (
	"context"
	"errors"
	"fmt"
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

func TestExactlyOneLeaderUnderConcurrentCampaigns(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	const candidates, terms = 6, 3
	var leading, peak atomic.Int64
	var mu sync.Mutex
	var fences []coord.Revision
	var wg sync.WaitGroup
	for i := 0; i < candidates; i++ {
		e := New(coordtest.Session(t, c.Node(i%3), time.Minute), "/svc/leader")
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for k := 0; k < terms; k++ {
				if err := e.Campaign(ctx, []byte(fmt.Sprint(i))); err != nil {
					t.Error(err)
					return
				}
				now := leading.Add(1)
				for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
				}
				// A write guarded by leadership succeeds during the term.
				r, err := e.s.Node().Txn(ctx).If(e.IsLeader()).Then(coord.OpPut("/svc/state", []byte(fmt.Sprint(i)))).Commit()
				if err != nil || !r.Succeeded {
					t.Errorf("guarded write by the leader: %v %v", r, err)
				}
				mu.Lock()
				fences = append(fences, e.Fence())
				mu.Unlock()
				leading.Add(-1)
				if err := e.Resign(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	if p := peak.Load(); p != 1 {
		t.Fatalf("%d leaders at once", p)
	}
	for i := 1; i < len(fences); i++ {
		if fences[i] <= fences[i-1] {
			t.Fatalf("fence of term %d (%d) not above term %d's (%d)", i, fences[i], i-1, fences[i-1])
		}
	}
}

func TestObserveSeesEveryLeaderAndNoLeader(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	a := New(coordtest.Session(t, c.Node(0), time.Minute), "/obs/leader")
	b := New(coordtest.Session(t, c.Node(1), time.Minute), "/obs/leader")
	// The observer stands in no election: it needs no session.
	watcher := Watcher(c.Node(2), "/obs/leader")
	if err := watcher.Campaign(ctx, nil); !errors.Is(err, ErrNotCandidate) {
		t.Fatalf("Campaign by a Watcher: %v, want ErrNotCandidate", err)
	}
	if err := watcher.Resign(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Resign by a Watcher: %v, want ErrNotLeader", err)
	}
	obs := watcher.Observe(ctx)
	next := func() *Leader {
		t.Helper()
		select {
		case o, ok := <-obs:
			if !ok {
				t.Fatal("Observe closed")
			}
			return o.Leader
		case <-time.After(15 * time.Second):
			t.Fatal("no observation")
		}
		return nil
	}
	if l := next(); l != nil {
		t.Fatalf("first observation %+v, want no leader", l)
	}
	if err := a.Campaign(ctx, []byte("a1")); err != nil {
		t.Fatal(err)
	}
	bgot := make(chan error, 1)
	go func() { bgot <- b.Campaign(ctx, []byte("b1")) }()
	if l := next(); l == nil || string(l.Value) != "a1" {
		t.Fatalf("observed %+v, want a1", l)
	}
	if err := a.Proclaim(ctx, []byte("a2")); err != nil {
		t.Fatal(err)
	}
	if l := next(); l == nil || string(l.Value) != "a2" {
		t.Fatalf("observed %+v, want a2", l)
	}
	if err := b.Proclaim(ctx, []byte("x")); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Proclaim by a non-leader: %v", err)
	}
	if err := a.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-bgot; err != nil {
		t.Fatal(err)
	}
	if l := next(); l == nil || string(l.Value) != "b1" || l.Lease != b.s.Lease() {
		t.Fatalf("observed %+v, want b1 with b's lease", l)
	}
	if l, err := a.Leader(ctx); err != nil || string(l.Value) != "b1" {
		t.Fatalf("Leader() = %+v %v", l, err)
	}
	if l, err := watcher.Leader(ctx); err != nil || string(l.Value) != "b1" || l.Lease != b.s.Lease() {
		t.Fatalf("Watcher's Leader() = %+v %v, want b1 with b's lease", l, err)
	}
	if err := b.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if l := next(); l != nil {
		t.Fatalf("observed %+v after the last leader resigned, want no leader", l)
	}
	if _, err := a.Leader(ctx); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("Leader() with nobody: %v", err)
	}
}

func TestLeaderFailover(t *testing.T) {
	c := coordtest.New(t, 3, coordtest.WithPartitions())
	ctx := ctxT(t)
	leader := c.WaitLeader(0)
	victim := (leader + 1) % 3
	ttl := 2 * coordtest.ElectionTimeout
	old := New(coordtest.Session(t, c.Node(victim), ttl), "/fo/leader")
	if err := old.Campaign(ctx, []byte("old")); err != nil {
		t.Fatal(err)
	}
	next := New(coordtest.Session(t, c.Node(leader), time.Minute), "/fo/leader")
	got := make(chan error, 1)
	go func() { got <- next.Campaign(ctx, []byte("next")) }()
	coordtest.Eventually(t, 10*time.Second, func() bool {
		g, _ := c.Node(leader).Get(ctx, "/fo/leader/", coord.WithPrefix(), coord.WithCountOnly())
		return g != nil && g.Count == 2
	}, "candidate never queued")
	start := time.Now()
	c.Isolate(victim) // the leader's process is as good as dead
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("failover after the leader was cut off: %v (session TTL %v, election timeout %v)", took, ttl, coordtest.ElectionTimeout)
	if bound := ttl + 2*coordtest.ElectionTimeout + 2*time.Second; took > bound {
		t.Fatalf("failover took %v, more than TTL + election timeout (with slack: %v)", took, bound)
	}
	if next.Fence() <= old.Fence() {
		t.Fatalf("new term's fence %d not above the old one's %d", next.Fence(), old.Fence())
	}
	c.Heal(victim)
	select {
	case <-old.Done():
		if !errors.Is(old.Err(), ErrLost) {
			t.Fatalf("old leader's Err = %v", old.Err())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the old leader never learnt it lost")
	}
}

func TestCleanCloseHandsOverAtOnce(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	// A long TTL: only a revoke on Close can explain a quick handover.
	old := New(coordtest.Session(t, c.Node(0), time.Minute), "/cc/leader")
	if err := old.Campaign(ctx, []byte("old")); err != nil {
		t.Fatal(err)
	}
	next := New(coordtest.Session(t, c.Node(1), time.Minute), "/cc/leader")
	got := make(chan error, 1)
	go func() { got <- next.Campaign(ctx, []byte("next")) }()
	coordtest.Eventually(t, 10*time.Second, func() bool {
		g, _ := c.Node(1).Get(ctx, "/cc/leader/", coord.WithPrefix(), coord.WithCountOnly())
		return g != nil && g.Count == 2
	}, "candidate never queued")
	c.Stop(0)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // well under the one-minute TTL
		t.Fatal("the next candidate was not elected after the leader's Node closed")
	}
}
