package registry

import (
	"errors"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

// TestKeptRegistrationComesBack cuts a registered instance's member off
// past its session's TTL: the cluster removes the registration, the
// instance sees the loss, and once healed it is registered again, with
// its latest state, without any code of the application's; only
// Deregister ends it.
func TestKeptRegistrationComesBack(t *testing.T) {
	c := coordtest.New(t, 3, coordtest.WithPartitions())
	ctx := ctxT(t)
	leader := c.WaitLeader(0)
	victim := (leader + 1) % 3
	ttl := 2 * coordtest.ElectionTimeout
	g, err := New(c.Node(victim), "/services").Register(ctx, Instance{Service: "api", ID: "a1", Addr: "10.0.0.1:80"},
		WithTTL(ttl), KeepRegistered(50*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.SetStatus(ctx, Warning); err != nil {
		t.Fatal(err)
	}
	other := New(c.Node(leader), "/services")
	lookup := func() []Instance {
		got, err := other.Lookup(ctx, "api")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	event := func(want RegistrationEventType) RegistrationEvent {
		t.Helper()
		for {
			select {
			case ev, ok := <-g.Events():
				if !ok {
					t.Fatalf("Events closed waiting for %d: %v", want, g.Err())
				}
				if ev.Type == want {
					return ev
				}
				t.Logf("event %d: %v", ev.Type, ev.Err)
			case <-time.After(30 * time.Second):
				t.Fatalf("no event %d", want)
			}
		}
	}

	c.Isolate(victim)
	coordtest.Eventually(t, 20*time.Second, func() bool { return len(lookup()) == 0 }, "a cut-off instance stayed registered")
	if ev := event(Lost); !errors.Is(ev.Err, coord.ErrSessionExpired) {
		t.Fatalf("Lost event with %v, want ErrSessionExpired", ev.Err)
	}
	select {
	case <-g.Done():
		t.Fatalf("a kept registration ended with its session: %v", g.Err())
	default:
	}

	c.Heal(victim)
	rec := event(Recovered)
	got := lookup()
	if len(got) != 1 || got[0].Addr != "10.0.0.1:80" || got[0].Status != Warning || got[0].Revision < rec.Revision {
		t.Fatalf("after recovery: %+v (event revision %d), want a1 back, still warning", got, rec.Revision)
	}
	if err := g.SetStatus(ctx, Passing); err != nil {
		t.Fatalf("SetStatus after recovery: %v", err)
	}
	if got := lookup(); len(got) != 1 || got[0].Status != Passing {
		t.Fatalf("after SetStatus: %+v", got)
	}

	if err := g.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	<-g.Done()
	if !errors.Is(g.Err(), ErrNotRegistered) {
		t.Fatalf("Err after Deregister = %v", g.Err())
	}
	if _, ok := <-g.Events(); ok {
		t.Fatal("Events still open after Deregister")
	}
	if got := lookup(); len(got) != 0 {
		t.Fatalf("after Deregister: %+v", got)
	}
}

// TestRegistrationEndsWithItsSessionOrNode: without KeepRegistered, a lost
// session ends the registration (one Lost event, then Done); with it, only
// the Node's Close does.
func TestRegistrationEndsWithItsSessionOrNode(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	n := c.Node(0)
	regs := New(n, "/services")
	g, err := regs.Register(ctx, Instance{Service: "db", ID: "d1"}, WithTTL(2*coordtest.ElectionTimeout))
	if err != nil {
		t.Fatal(err)
	}
	kept, err := regs.Register(ctx, Instance{Service: "db", ID: "d2"}, WithTTL(2*coordtest.ElectionTimeout), KeepRegistered(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	// Revoke both sessions' leases behind their backs.
	for _, r := range []*Registration{g, kept} {
		s, _ := r.current()
		if err := n.Revoke(ctx, s.Lease()); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-g.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("a registration outlived its session")
	}
	if ev := <-g.Events(); ev.Type != Lost || !errors.Is(g.Err(), coord.ErrSessionExpired) {
		t.Fatalf("event %+v, Err %v; want Lost and ErrSessionExpired", ev, g.Err())
	}
	coordtest.Eventually(t, 20*time.Second, func() bool {
		got, err := regs.Lookup(ctx, "db")
		return err == nil && len(got) == 1 && got[0].ID == "d2"
	}, "the kept registration did not come back alone")
	c.Stop(0)
	select {
	case <-kept.Done():
		if !errors.Is(kept.Err(), coord.ErrClosed) {
			t.Fatalf("kept registration ended with %v, want ErrClosed", kept.Err())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a kept registration outlived its Node")
	}
}
