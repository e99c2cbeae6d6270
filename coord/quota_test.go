package coord_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

// TestQuotaAlarmAndRecovery fills a 3-member cluster past its quota from
// a writer on every member: the NOSPACE alarm is raised through Raft,
// every member refuses what would grow the store and nothing refused is
// applied, while deletes and compaction work; once space is freed and the
// alarm disarmed, writes resume.
func TestQuotaAlarmAndRecovery(t *testing.T) {
	const quota = 64 << 10
	c := coordtest.New(t, 3, coordtest.WithConfig(func(cfg *coord.Config) {
		cfg.MaxStoreBytes = quota
		cfg.HistoryRetention = -1 // only the test compacts
	}))
	ctx := ctxT(t)
	value := make([]byte, 1024)
	var wg sync.WaitGroup
	refused := make([]string, 3)
	for i := range 3 {
		n := c.Node(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				key := fmt.Sprintf("/fill/%d-%d", i, j)
				_, err := n.Put(ctx, key, value)
				if errors.Is(err, coord.ErrNoSpace) {
					refused[i] = key
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				if j > 1000 {
					t.Error("no ErrNoSpace after 1000 puts of 1 KiB with a 64 KiB quota")
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Every member: the alarm is listed, a put and a grant are refused.
	for i := range 3 {
		n := c.Node(i)
		coordtest.Eventually(t, 10*time.Second, func() bool {
			a, err := n.Alarms(ctx)
			return err == nil && len(a) == 1 && a[0].Kind == coord.AlarmNoSpace && a[0].Shard == 0
		}, "member %d does not list the NOSPACE alarm", i)
		if _, err := n.Put(ctx, "/fill/more", []byte("x")); !errors.Is(err, coord.ErrNoSpace) {
			t.Fatalf("member %d took a put past the quota: %v", i, err)
		}
		if _, err := n.Grant(ctx, time.Minute); !errors.Is(err, coord.ErrNoSpace) {
			t.Fatalf("member %d granted a lease under the alarm: %v", i, err)
		}
	}
	for _, k := range append(refused, "/fill/more") {
		if g, _ := c.Node(1).Get(ctx, k); len(g.KVs) != 0 {
			t.Fatalf("refused write %s was applied", k)
		}
	}
	st, _ := c.Node(2).Status(ctx)
	if !st.Shards[0].NoSpace || st.Shards[0].StoreBytes < quota {
		t.Fatalf("status under the alarm: %+v", st.Shards[0])
	}
	if m := c.Node(0).Metrics(); !m.Shards[0].NoSpace || m.Shards[0].StoreBytes < quota {
		t.Fatalf("metrics under the alarm: %+v", m.Shards[0])
	}
	// Free space: delete, then compact the history of the deleted keys.
	d, err := c.Node(1).Delete(ctx, "/fill/", coord.WithPrefix())
	if err != nil || d.Deleted == 0 {
		t.Fatalf("delete under the alarm: %+v %v", d, err)
	}
	if _, err := c.Node(2).Compact(ctx, 0, d.Header.Revision); err != nil {
		t.Fatalf("compact under the alarm: %v", err)
	}
	c.Node(1).Get(ctx, "/fill/") // a linearizable read: member 1 has applied the compaction
	st, _ = c.Node(1).Status(ctx)
	if st.Shards[0].StoreBytes >= quota/4 {
		t.Fatalf("after delete and compact the store counts %d bytes", st.Shards[0].StoreBytes)
	}
	// Still refused until disarmed.
	if _, err := c.Node(0).Put(ctx, "/after", []byte("x")); !errors.Is(err, coord.ErrNoSpace) {
		t.Fatalf("a put before the disarm: %v", err)
	}
	if err := c.Node(2).DisarmAlarms(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if a, err := c.Node(i).Alarms(ctx); err != nil || len(a) != 0 {
			t.Fatalf("member %d after the disarm: %v %v", i, a, err)
		}
		if _, err := c.Node(i).Put(ctx, fmt.Sprintf("/after/%d", i), value); err != nil {
			t.Fatalf("member %d after the disarm: %v", i, err)
		}
	}
}
