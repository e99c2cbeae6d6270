package lease

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// fakeShard leads in term 1 from the start, serves reads, and records the
// expiries proposed.
type fakeShard struct {
	leader atomic.Uint64
	mu     sync.Mutex
	expire [][]sm.ExpireItem
}

func (f *fakeShard) Leader() (uint64, uint64, bool)               { return f.leader.Load(), 1, f.leader.Load() != 0 }
func (f *fakeShard) Read(context.Context, bool) (*sm.View, error) { return nil, nil }
func (f *fakeShard) Propose(_ context.Context, c *sm.Command) (*sm.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire = append(f.expire, c.Expire)
	return &sm.Result{}, nil
}

func (f *fakeShard) proposed() [][]sm.ExpireItem {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]sm.ExpireItem(nil), f.expire...)
}

func keeper(s Shard) *Keeper {
	return NewKeeper(s, Config{Self: 1, Period: time.Millisecond, ElectionTimeout: 50 * time.Millisecond,
		RequestTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// A lease is due once its deadline passed, with the index of its last
// renewal; its expiry is not proposed again within an election timeout;
// a renewal moves the deadline, and a new leader restarts every countdown
// at the full TTL but never shortens one.
func TestKeeperDeadlines(t *testing.T) {
	k := keeper(&fakeShard{})
	k.LeaseRenewed(7, 100, 40)
	k.LeaseRenewed(3, 100, 41)
	k.LeaseRenewed(9, 10_000, 42)
	now := time.Now()
	if due := k.due(now); len(due) != 0 {
		t.Fatalf("due at once: %v", due)
	}
	later := now.Add(200 * time.Millisecond)
	due := k.due(later)
	if len(due) != 2 || due[0] != (sm.ExpireItem{ID: 3, Renew: 41}) || due[1] != (sm.ExpireItem{ID: 7, Renew: 40}) {
		t.Fatalf("due after 200ms: %v, want leases 3 and 7 by ID with their renewals", due)
	}
	if again := k.due(later.Add(10 * time.Millisecond)); len(again) != 0 {
		t.Fatalf("proposed again within an election timeout: %v", again)
	}
	if again := k.due(later.Add(100 * time.Millisecond)); len(again) != 2 {
		t.Fatalf("not proposed again after an election timeout: %v", again)
	}
	k.LeaseRenewed(7, 100, 50)
	k.LeaseGone(3)
	if r := k.Remaining(7, 100); r <= 0 || r > 100*time.Millisecond {
		t.Fatalf("remaining after a renewal: %v", r)
	}
	if r := k.Remaining(3, 100); r != 100*time.Millisecond {
		t.Fatalf("remaining of a lease gone: %v, want its TTL", r)
	}
	k.restartCountdowns(time.Now().Add(time.Hour))
	if r := k.Remaining(9, 10_000); r < 59*time.Minute {
		t.Fatalf("a restarted countdown has %v left, want about an hour and 10s", r)
	}
	k.restartCountdowns(time.Now())
	if r := k.Remaining(9, 10_000); r < 59*time.Minute {
		t.Fatalf("a restart shortened a countdown to %v", r)
	}
	k.LeasesReset([]sm.LeaseInfo{{ID: 5, TTL: 100, Renew: 60}})
	if due := k.due(time.Now().Add(time.Second)); len(due) != 1 || due[0].ID != 5 {
		t.Fatalf("after a reset: %v, want lease 5 alone", due)
	}
}

// Run proposes expiries only while this replica leads, after restarting
// the countdowns once in its term.
func TestKeeperRunsWhileLeading(t *testing.T) {
	f := &fakeShard{}
	k := keeper(f)
	k.LeaseRenewed(1, 20, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		k.Run(ctx)
		close(done)
	}()
	time.Sleep(100 * time.Millisecond) // a follower's keeper: nothing may happen
	if p := f.proposed(); len(p) != 0 {
		t.Fatalf("a keeper that does not lead proposed %v", p)
	}
	start := time.Now()
	f.leader.Store(1)
	k.Leading()
	for deadline := time.Now().Add(10 * time.Second); len(f.proposed()) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a leading keeper never expired a lease past its deadline")
		}
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("expired %v after taking the lead, before a full TTL", d)
	}
	if p := f.proposed()[0]; len(p) != 1 || p[0] != (sm.ExpireItem{ID: 1, Renew: 10}) {
		t.Fatalf("proposed %v", p)
	}
	cancel()
	<-done
}

// KeepAlive renews every third of the TTL, sooner after a failure, and
// ends on a stopping error, on done, or with ctx.
func TestKeepAliveLoop(t *testing.T) {
	var calls atomic.Int32
	boom, gone := errors.New("leader changed"), errdefs.ErrLeaseNotFound
	err := KeepAlive(context.Background(), nil, 30*time.Millisecond, func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("a renewal without a deadline")
		}
		switch calls.Add(1) {
		case 1, 3:
			return nil
		case 2:
			return boom
		}
		return gone
	}, func(err error) bool { return errors.Is(err, errdefs.ErrLeaseNotFound) })
	if !errors.Is(err, gone) || calls.Load() != 4 {
		t.Fatalf("KeepAlive: %v after %d renewals, want ErrLeaseNotFound after 4", err, calls.Load())
	}
	done := make(chan struct{})
	close(done)
	if err := KeepAlive(context.Background(), done, time.Hour, nil, nil); !errors.Is(err, errdefs.ErrClosed) {
		t.Fatalf("KeepAlive with done closed: %v, want ErrClosed", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := KeepAlive(ctx, nil, time.Hour, nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("KeepAlive with ctx canceled: %v", err)
	}
}
