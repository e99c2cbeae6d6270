package coord_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/internal/hooks"
)

// The leader's disk fills up (its free space, as the member reads it,
// drops below Config.DiskReserve) while writers work through every member.
// The member stays up: writes through it fail at once with ErrNoSpace and
// are not applied, it hands its leadership over, and it takes no new
// entries, so its replica stops advancing while the others take writes.
// Once space is freed it takes writes again and catches up. No write
// acknowledged to the writers is lost. (With the disk really full, the
// Raft log's next write would have ended the process.)
func TestNearlyFullDiskStopsWritesNotTheMember(t *testing.T) {
	var free [3]atomic.Uint64
	for i := range free {
		free[i].Store(1 << 40)
	}
	c := coordtest.New(t, 3, coordtest.WithConfig(func(cfg *coord.Config) {
		i := int(cfg.Name[1] - '0')
		hooks.SetDiskFree(cfg, func() (uint64, error) { return free[i].Load(), nil })
	}))
	v := c.WaitLeader(0)
	other := c.Node((v + 1) % 3)
	log := &ackLog{at: map[string]time.Time{}, val: map[string]string{}, round: 1}
	stop := log.writers(c)
	revision := func(n *coord.Node) coord.Revision {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := n.Get(ctx, "/pl/", coord.WithPrefix(), coord.WithSerializable(), coord.WithCountOnly())
		if err != nil {
			t.Fatalf("serializable read: %v", err)
		}
		return r.Header.Revision
	}
	time.Sleep(500 * time.Millisecond)

	free[v].Store(1 << 20) // below the 64 MiB reserve
	var refused []string
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; len(refused) == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("writes through the member with a full disk still succeed")
		}
		key := fmt.Sprintf("/full/%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.Node(v).Put(ctx, key, []byte("v"))
		cancel()
		switch {
		case errors.Is(err, coord.ErrNoSpace):
			refused = append(refused, key)
		case err != nil:
			t.Fatalf("a write through the member with a full disk: %v; want ErrNoSpace", err)
		default:
			time.Sleep(10 * time.Millisecond)
		}
	}
	deadline = time.Now().Add(10 * coordtest.ElectionTimeout)
	for c.Leader(0) == v || c.Leader(0) < 0 {
		if time.Now().After(deadline) {
			t.Fatalf("member %d, its disk full, still leads", v)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // what it had taken is applied
	stuck := revision(c.Node(v))
	time.Sleep(time.Second)
	if r := revision(c.Node(v)); r != stuck {
		t.Fatalf("the member with a full disk went on taking entries: revision %d, then %d", stuck, r)
	}
	ahead := revision(other)
	if ahead <= stuck {
		t.Fatalf("the others took no writes meanwhile: revision %d, the full member's %d", ahead, stuck)
	}
	st, err := c.Node(v).Status(context.Background())
	if err != nil || !st.DiskLow || !c.Node(v).Metrics().DiskLow {
		t.Fatalf("Status and Metrics do not show the full disk: %+v, %v", st, err)
	}
	t.Logf("disk full: member %d refused a write (ErrNoSpace), handed over the leadership, stayed at revision %d while the others reached %d", v, stuck, ahead)

	free[v].Store(1 << 40)
	deadline = time.Now().Add(10 * time.Second)
	for revision(c.Node(v)) < ahead {
		if time.Now().After(deadline) {
			t.Fatalf("the member did not catch up once space was freed: revision %d, want %d", revision(c.Node(v)), ahead)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, err := c.Node(v).Status(context.Background()); err != nil || st.DiskLow {
		t.Fatalf("Status still shows the full disk: %+v, %v", st, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Node(v).Put(ctx, "/full/after", []byte("v")); err != nil {
		t.Fatalf("a write once space was freed: %v", err)
	}
	stop()
	lost, checked := log.lostBefore(t, c.Node(v), time.Now())
	if len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged writes are gone, e.g. %s", len(lost), checked, lost[0])
	}
	r, err := c.Node(v).Get(ctx, "/full/", coord.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range r.KVs {
		for _, k := range refused {
			if kv.Key == k {
				t.Fatalf("the write refused with ErrNoSpace, %s, was applied", k)
			}
		}
	}
	t.Logf("space freed: the member caught up and took writes; all %d acknowledged writes are there", checked)
}
