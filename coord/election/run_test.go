package election

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

// TestRunStandsAgainAfterALostTerm cuts the leader's member off past its
// session's TTL: its work is canceled with ErrLost, another candidate
// leads with a higher fence, and once healed the first candidate stands
// again and leads again without any code of the application's. Every
// write guarded by the term's leadership lands in fence order: no two
// holders at any revision.
func TestRunStandsAgainAfterALostTerm(t *testing.T) {
	c := coordtest.New(t, 3, coordtest.WithPartitions())
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	leader := c.WaitLeader(0)
	victim := (leader + 1) % 3
	ttl := 2 * coordtest.ElectionTimeout
	const name, log = "/run/leader", "/run/log/"

	type write struct {
		rev   coord.Revision
		fence coord.Revision
	}
	var mu sync.Mutex
	var writes []write
	events := map[string]chan RunEvent{"a": make(chan RunEvent, 64), "b": make(chan RunEvent, 64)}
	causes := make(chan error, 8)
	resignB := make(chan struct{}, 1)
	work := func(who string, n *coord.Node) func(context.Context, Term) error {
		return func(wctx context.Context, term Term) error {
			for i := 0; ; i++ {
				r, err := n.Txn(wctx).If(term.Election.IsLeader()).
					Then(coord.OpPut(fmt.Sprintf("%s%s-%d-%d", log, who, term.Fence, i), nil)).Commit()
				if err == nil && r.Succeeded {
					mu.Lock()
					writes = append(writes, write{r.Header.Revision, term.Fence})
					mu.Unlock()
				}
				select {
				case <-wctx.Done():
					causes <- context.Cause(wctx)
					return wctx.Err()
				case <-resignB:
					if who == "b" {
						return nil
					}
					resignB <- struct{}{} // not ours
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}
	runs := make(chan error, 2)
	start := func(who string, i int) {
		go func() {
			runs <- Run(ctx, c.Node(i), name, []byte(who), work(who, c.Node(i)), WithSessionTTL(ttl),
				WithBackoff(50*time.Millisecond, 500*time.Millisecond),
				OnChange(func(ev RunEvent) { events[who] <- ev }))
		}()
	}
	next := func(who string, want RunEventType) RunEvent {
		t.Helper()
		for {
			select {
			case ev := <-events[who]:
				if ev.Type == want {
					return ev
				}
				t.Logf("%s: event %d (fence %d, err %v)", who, ev.Type, ev.Fence, ev.Err)
			case <-time.After(30 * time.Second):
				t.Fatalf("%s: no event %d", who, want)
			}
		}
	}

	start("a", victim)
	first := next("a", Elected)
	start("b", leader)
	coordtest.Eventually(t, 10*time.Second, func() bool {
		g, _ := c.Node(leader).Get(ctx, name+"/", coord.WithPrefix(), coord.WithCountOnly())
		return g != nil && g.Count == 2
	}, "b never queued")

	c.Isolate(victim)
	ended := next("a", TermEnded)
	if ended.Fence != first.Fence || !errors.Is(ended.Err, ErrLost) {
		t.Fatalf("a's term ended with %+v, want fence %d and ErrLost", ended, first.Fence)
	}
	if cause := <-causes; !errors.Is(cause, ErrLost) {
		t.Fatalf("a's work was canceled with cause %v, want ErrLost", cause)
	}
	b := next("b", Elected)
	if b.Fence <= first.Fence {
		t.Fatalf("b's fence %d is not above a's %d", b.Fence, first.Fence)
	}

	c.Heal(victim)
	// a stands again by itself; it leads once b hands over.
	coordtest.Eventually(t, 30*time.Second, func() bool {
		g, _ := c.Node(leader).Get(ctx, name+"/", coord.WithPrefix(), coord.WithCountOnly())
		return g != nil && g.Count == 2
	}, "a never stood again after it was healed")
	resignB <- struct{}{}
	if ev := next("b", TermEnded); ev.Err != nil {
		t.Fatalf("b's resign: %v", ev.Err)
	}
	again := next("a", Elected)
	if again.Fence <= b.Fence {
		t.Fatalf("a's new fence %d is not above b's %d", again.Fence, b.Fence)
	}
	coordtest.Eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(writes) > 0 && writes[len(writes)-1].fence == again.Fence
	}, "a's new term never wrote")

	cancel()
	for range 2 {
		if err := <-runs; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v after its ctx ended, want context.Canceled", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(writes, func(i, j int) bool { return writes[i].rev < writes[j].rev })
	terms := map[coord.Revision]bool{}
	for i, w := range writes {
		terms[w.fence] = true
		if i > 0 && w.fence < writes[i-1].fence {
			t.Fatalf("a write of the term with fence %d at revision %d, after one of fence %d: two holders", w.fence, w.rev, writes[i-1].fence)
		}
	}
	if len(terms) < 3 {
		t.Fatalf("guarded writes came from %d terms, want 3 (a, b, a again)", len(terms))
	}
}

// TestRunEndsWithWorksError: work's error, returned while leading, ends
// Run after a resign that lets the next candidate lead at once.
func TestRunEndsWithWorksError(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	boom := errors.New("boom")
	err := Run(ctx, c.Node(0), "/runerr/leader", nil, func(context.Context, Term) error { return boom },
		WithSessionTTL(time.Minute))
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want work's error", err)
	}
	g, err := c.Node(0).Get(ctx, "/runerr/leader/", coord.WithPrefix(), coord.WithCountOnly())
	if err != nil || g.Count != 0 {
		t.Fatalf("after Run: %v candidates left (%v), want none", g, err)
	}
	if err := Run(ctx, c.Node(0), "/runerr/leader", nil, nil, WithBackoff(0, 0)); err == nil {
		t.Fatal("Run with a zero backoff: no error")
	}
}
