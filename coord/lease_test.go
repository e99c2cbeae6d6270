package coord_test

import (
	"errors"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

func TestSubSecondTTLsFollowTheElectionTimeout(t *testing.T) {
	c := coordtest.New(t, 1, coordtest.WithConfig(func(cfg *coord.Config) {
		cfg.HeartbeatInterval = 20 * time.Millisecond
		cfg.ElectionTimeout = 200 * time.Millisecond
	}))
	ctx := ctxT(t)
	n := c.Node(0)
	l, err := n.Grant(ctx, 500*time.Millisecond)
	if err != nil {
		t.Fatalf("a 500ms TTL with a 200ms election timeout: %v", err)
	}
	mustPut(t, n, "/ttl/k", "v", coord.WithLease(l.ID))
	start := time.Now()
	coordtest.Eventually(t, 10*time.Second, func() bool {
		g, err := n.Get(ctx, "/ttl/k")
		return err == nil && g.Count == 0
	}, "a 500ms lease never expired")
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("a 500ms lease expired after %v", d)
	}
	if _, err := n.Grant(ctx, 300*time.Millisecond); !errors.Is(err, coord.ErrInvalidTTL) {
		t.Fatalf("a 300ms TTL with a 200ms election timeout: %v, want ErrInvalidTTL", err)
	}
}

func TestHistoryRetentionCompactsAutomatically(t *testing.T) {
	c := coordtest.New(t, 1, coordtest.WithConfig(func(cfg *coord.Config) { cfg.HistoryRetention = 100 }))
	ctx := ctxT(t)
	n := c.Node(0)
	for i := 0; i < 300; i++ {
		mustPut(t, n, "/hist/k", "v")
	}
	coordtest.Eventually(t, 30*time.Second, func() bool {
		st := statusOf(t, n)
		return st.Shards[0].CompactRevision > 0
	}, "history was never compacted")
	st := statusOf(t, n).Shards[0]
	if kept := st.Revision - st.CompactRevision; kept < 100 || kept > 110 {
		t.Fatalf("kept %d revisions of history, want about 100", kept)
	}
	if _, err := n.Get(ctx, "/hist/k", coord.WithRev(2)); !errors.Is(err, coord.ErrCompacted) {
		t.Fatalf("read below the retention window: %v", err)
	}
	if _, err := n.Get(ctx, "/hist/k", coord.WithRev(st.Revision-50)); err != nil {
		t.Fatalf("read inside the retention window: %v", err)
	}
}
