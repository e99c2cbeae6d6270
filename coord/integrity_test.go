package coord_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

// TestIntegrityCheckRaisesCorruptAlarm corrupts one replica of a 3-member
// cluster through a test-only hook: an on-demand check names that member,
// every member lists the CORRUPT alarm and refuses writes with
// ErrCorruptAlarm while reads go on; once the replica is repaired, a check
// finds the hashes equal, the alarm is disarmed and writes resume.
func TestIntegrityCheckRaisesCorruptAlarm(t *testing.T) {
	c := coordtest.New(t, 3, coordtest.WithConfig(func(cfg *coord.Config) { cfg.HashCheckInterval = -1 }))
	ctx := ctxT(t)
	for _, k := range []string{"/a", "/b", "/c"} {
		if _, err := c.Node(0).Put(ctx, k, []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	checks, err := c.Node(1).CheckHash(ctx)
	if err != nil || len(checks) != 1 {
		t.Fatalf("CheckHash: %v, %+v", err, checks)
	}
	if hc := checks[0]; len(hc.Hashes) != 3 || hc.Corrupt != nil || hc.Missing != nil || hc.Revision < 4 {
		t.Fatalf("a check of equal replicas: %+v", hc)
	}
	// Member 2's replica diverges: each member applied every write, so its
	// own copy is all that differs.
	for i := range 3 {
		coordtest.Eventually(t, 5*time.Second, func() bool { return coordtest.Count(t, c.Node(i), "/") == 3 }, "member %d behind", i)
	}
	bad := c.Config(2).Name
	if !c.Diverge(2, "/b", []byte("flipped")) {
		t.Fatal("Diverge found no /b")
	}
	checks, err = c.Node(0).CheckHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hc := checks[0]
	if !slices.Equal(hc.Corrupt, []string{bad}) || len(hc.Hashes) != 3 {
		t.Fatalf("check after tampering with %s: %+v", bad, hc)
	}
	for i := range 3 {
		n := c.Node(i)
		coordtest.Eventually(t, 10*time.Second, func() bool {
			a, err := n.Alarms(ctx)
			return err == nil && len(a) == 1 && a[0].Kind == coord.AlarmCorrupt && slices.Equal(a[0].Members, []string{bad})
		}, "member %d does not list the CORRUPT alarm naming %s", i, bad)
		if _, err := n.Put(ctx, "/d", []byte("x")); !errors.Is(err, coord.ErrCorruptAlarm) {
			t.Fatalf("member %d took a put under the CORRUPT alarm: %v", i, err)
		}
		if _, err := n.Delete(ctx, "/a"); !errors.Is(err, coord.ErrCorruptAlarm) {
			t.Fatalf("member %d took a delete under the CORRUPT alarm: %v", i, err)
		}
		if g, err := n.Get(ctx, "/a"); err != nil || len(g.KVs) != 1 {
			t.Fatalf("member %d: a read under the CORRUPT alarm: %v", i, err)
		}
		if st, _ := n.Status(ctx); !st.Shards[0].Corrupt {
			t.Fatalf("member %d: status %+v", i, st.Shards[0])
		}
		if m := n.Metrics(); !m.Shards[0].Corrupt {
			t.Fatalf("member %d: metrics %+v", i, m.Shards[0])
		}
	}
	// Disarmed while the replica still differs, the next check raises the
	// alarm again.
	if err := c.Node(1).DisarmAlarms(ctx); err != nil {
		t.Fatal(err)
	}
	if checks, err = c.Node(1).CheckHash(ctx); err != nil || !slices.Equal(checks[0].Corrupt, []string{bad}) {
		t.Fatalf("a check of the still-diverged replica: %v, %+v", err, checks)
	}
	if _, err := c.Node(1).Put(ctx, "/d", []byte("x")); !errors.Is(err, coord.ErrCorruptAlarm) {
		t.Fatalf("a put after the alarm was raised again: %v", err)
	}
	// Repaired (as replacing the member would), checked, disarmed: writes
	// resume.
	c.Diverge(2, "/b", []byte("v/b"))
	if checks, err = c.Node(2).CheckHash(ctx); err != nil || checks[0].Corrupt != nil {
		t.Fatalf("a check after the repair: %v, %+v", err, checks)
	}
	if err := c.Node(2).DisarmAlarms(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Node(0).Put(ctx, "/d", []byte("x")); err != nil {
		t.Fatalf("a put after disarming: %v", err)
	}
	if a, err := c.Node(0).Alarms(ctx); err != nil || len(a) != 0 {
		t.Fatalf("alarms after disarming: %v %v", a, err)
	}
}

// TestPeriodicIntegrityCheck: with HashCheckInterval set, the leader checks
// on its own, and a replica that diverged is found without a CheckHash.
func TestPeriodicIntegrityCheck(t *testing.T) {
	c := coordtest.New(t, 3, coordtest.WithConfig(func(cfg *coord.Config) { cfg.HashCheckInterval = 300 * time.Millisecond }))
	ctx := ctxT(t)
	if _, err := c.Node(0).Put(ctx, "/k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 5*time.Second, func() bool { return coordtest.Count(t, c.Node(1), "/") == 1 }, "member 1 behind")
	if !c.Diverge(1, "/k", []byte("w")) {
		t.Fatal("Diverge found no /k")
	}
	want := c.Config(1).Name
	coordtest.Eventually(t, 20*time.Second, func() bool {
		a, err := c.Node(0).Alarms(ctx)
		return err == nil && len(a) == 1 && a[0].Kind == coord.AlarmCorrupt && slices.Equal(a[0].Members, []string{want})
	}, "no CORRUPT alarm naming %s from the periodic check", want)
}
