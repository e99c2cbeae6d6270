package registry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context { return coordtest.Context(t, 60*time.Second) }

func TestRegisterLookupAcrossMembersAndCrashedInstanceDisappears(t *testing.T) {
	c := coordtest.New(t, 3, coordtest.WithPartitions())
	ctx := ctxT(t)
	leader := c.WaitLeader(0)
	victim := (leader + 1) % 3
	ttl := 2 * coordtest.ElectionTimeout
	regs := New(c.Node(victim), "/services")
	g, err := regs.Register(ctx, Instance{Service: "api", ID: "a1", Addr: "10.0.0.1:80", Metadata: map[string]string{"zone": "x"}}, WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Deregister(context.Background())
	// Linearizable: visible on every member as soon as Register returned.
	for i := 0; i < 3; i++ {
		got, err := New(c.Node(i), "/services").Lookup(ctx, "api")
		if err != nil || len(got) != 1 || got[0].Addr != "10.0.0.1:80" || got[0].Metadata["zone"] != "x" || got[0].Status != Passing {
			t.Fatalf("member %d: %+v %v", i, got, err)
		}
	}
	if _, err := regs.Register(ctx, Instance{Service: "api", ID: "a1"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("second registration of one ID: %v", err)
	}
	svcs, _ := New(c.Node(leader), "/services").Services(ctx)
	if len(svcs) != 1 || svcs[0] != "api" {
		t.Fatalf("Services = %v", svcs)
	}
	// The instance's process is cut off: gone within the TTL.
	start := time.Now()
	c.Isolate(victim)
	other := New(c.Node(leader), "/services")
	coordtest.Eventually(t, 20*time.Second, func() bool {
		got, err := other.Lookup(ctx, "api")
		return err == nil && len(got) == 0
	}, "a cut-off instance stayed registered")
	t.Logf("cut-off instance removed after %v (TTL %v)", time.Since(start), ttl)
	c.Heal(victim)
}

func TestWatchHasNoGapAcrossAMemberRestart(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	writer := New(c.Node(0), "/services")
	var log []string
	record := func(e Event) {
		if e.Type != Synced {
			log = append(log, fmt.Sprintf("%s %s %s", e.Type, e.Instance.ID, e.Instance.Status))
		}
	}
	w := New(c.Node(1), "/services").Watch(ctx, "db")
	if e := <-w; e.Type != Synced {
		t.Fatalf("first event %+v, want Synced (no instances yet)", e)
	}
	g1, err := writer.Register(ctx, Instance{Service: "db", ID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	var last coord.Revision
	take := func(ch <-chan Event, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			select {
			case e := <-ch:
				if e.Err != nil {
					t.Fatalf("watch error: %v", e.Err)
				}
				record(e)
				last = e.Revision
			case <-time.After(10 * time.Second):
				t.Fatalf("missing events; have %v", log)
			}
		}
	}
	take(w, 1)
	// The watching member restarts; changes happen meanwhile.
	c.Stop(1)
	for range w { // drains, ends with ErrClosed
	}
	if err := g1.SetStatus(ctx, Warning); err != nil {
		t.Fatal(err)
	}
	g2, err := writer.Register(ctx, Instance{Service: "db", ID: "d2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g1.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	n1 := c.Restart(1)
	w = New(n1, "/services").Watch(ctx, "db", FromRevision(last))
	take(w, 3)
	if err := g2.Update(ctx, func(in *Instance) { in.Addr = "x:1" }); err != nil {
		t.Fatal(err)
	}
	take(w, 1)
	want := []string{"added d1 passing", "updated d1 warning", "added d2 passing", "removed d1 warning", "updated d2 passing"}
	if fmt.Sprint(log) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", log, want)
	}
	g2.Deregister(ctx)
}

func TestHealthCheckFlipsStatusAndPassingOnlyExcludes(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	r := New(c.Node(0), "/services")
	var healthy atomic.Bool
	healthy.Store(true)
	check := Check{Interval: 50 * time.Millisecond, Func: func(context.Context) Status {
		if healthy.Load() {
			return Passing
		}
		return Critical
	}}
	g, err := r.Register(ctx, Instance{Service: "web", ID: "w1"}, WithCheck(check))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Deregister(context.Background())
	if _, err := r.Register(ctx, Instance{Service: "web", ID: "w2"}); err != nil {
		t.Fatal(err)
	}
	count := func(opts ...LookupOption) int {
		got, err := r.Lookup(ctx, "web", opts...)
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	if count(PassingOnly()) != 2 {
		t.Fatal("both instances should pass")
	}
	healthy.Store(false)
	coordtest.Eventually(t, 10*time.Second, func() bool { return count(PassingOnly()) == 1 }, "a failing check did not flip the status")
	if count() != 2 {
		t.Fatal("a critical instance must still be listed without PassingOnly")
	}
	healthy.Store(true)
	coordtest.Eventually(t, 10*time.Second, func() bool { return count(PassingOnly()) == 2 }, "a recovered check did not flip back")
	// Critical for longer than DeregisterAfter: removed.
	check.DeregisterAfter = 200 * time.Millisecond
	check.Func = func(context.Context) Status { return Critical }
	if _, err := r.Register(ctx, Instance{Service: "web", ID: "w3"}, WithCheck(check)); err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 10*time.Second, func() bool {
		got, _ := r.Lookup(ctx, "web")
		for _, in := range got {
			if in.ID == "w3" {
				return false
			}
		}
		return true
	}, "an instance critical past DeregisterAfter stayed")
	if _, err := r.Register(ctx, Instance{Service: "web", ID: "bad"}, WithCheck(Check{})); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a check with nothing to run: %v", err)
	}
	if _, err := r.Register(ctx, Instance{Service: "a/b", ID: "x"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("service with a slash: %v", err)
	}
}

func TestPickStrategies(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	r := New(c.Node(0), "/services")
	for i, w := range []int{1, 1, 2} {
		if _, err := r.Register(ctx, Instance{Service: "pick", ID: fmt.Sprint("i", i), Weight: w}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := r.NewResolver(ctx, "pick")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if len(res.Instances()) != 3 {
		t.Fatalf("resolver holds %d instances", len(res.Instances()))
	}
	// Round-robin: exact cycle.
	for k := 0; k < 6; k++ {
		in, _ := res.Pick(RoundRobin, "")
		if want := fmt.Sprint("i", k%3); in.ID != want {
			t.Fatalf("round-robin pick %d = %s, want %s", k, in.ID, want)
		}
	}
	// Random and weighted: frequencies within 5 standard deviations.
	const n = 4000
	check := func(s Strategy, want []float64) {
		t.Helper()
		counts := map[string]int{}
		for k := 0; k < n; k++ {
			in, _ := res.Pick(s, "")
			counts[in.ID]++
		}
		for i, p := range want {
			got := float64(counts[fmt.Sprint("i", i)])
			sd := math.Sqrt(n * p * (1 - p))
			if math.Abs(got-n*p) > 5*sd {
				t.Fatalf("strategy %d: i%d picked %v times, want about %v", s, i, got, n*p)
			}
		}
	}
	check(Random, []float64{1. / 3, 1. / 3, 1. / 3})
	check(Weighted, []float64{.25, .25, .5})
	// Sticky: stable per key; a down instance's keys move, others stay.
	before := map[string]string{}
	for k := 0; k < 100; k++ {
		in, _ := res.Pick(Sticky, fmt.Sprint("user", k))
		before[fmt.Sprint("user", k)] = in.ID
	}
	res.ReportDown("i1", time.Minute)
	for key, id := range before {
		in, _ := res.Pick(Sticky, key)
		if id != "i1" && in.ID != id {
			t.Fatalf("%s moved from %s to %s though %s stayed up", key, id, in.ID, id)
		}
		if in.ID == "i1" {
			t.Fatalf("%s picked the instance reported down", key)
		}
	}
	// The resolver follows changes.
	g, err := r.Register(ctx, Instance{Service: "pick", ID: "i3"})
	if err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 10*time.Second, func() bool { return len(res.Instances()) == 4 }, "resolver missed a registration")
	g.Deregister(ctx)
	coordtest.Eventually(t, 10*time.Second, func() bool { return len(res.Instances()) == 3 }, "resolver missed a deregistration")
}
