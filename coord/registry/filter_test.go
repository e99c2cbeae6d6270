package registry

import (
	"context"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord/coordtest"
)

// TestFiltersAndZonePreference: lookups and resolvers keep only the
// instances whose metadata match; a resolver's Changed wakes on each
// change it holds, not on others; PreferZone stays in the caller's zone
// while it has a usable instance.
func TestFiltersAndZonePreference(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	r := New(c.Node(0), "/services")
	reg := func(id, zone, version string) *Registration {
		g, err := r.Register(ctx, Instance{Service: "api", ID: id, Addr: id + ":80",
			Metadata: map[string]string{"zone": zone, "version": version}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Deregister(context.Background()) })
		return g
	}
	ids := func(ins []Instance) (out []string) {
		for _, in := range ins {
			out = append(out, in.ID)
		}
		return out
	}
	same := func(what string, got []string, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: %v, want %v", what, got, want)
			}
		}
	}
	a1, _, _ := reg("a1", "a", "1"), reg("a2", "a", "2"), reg("b1", "b", "1")

	got, err := r.Lookup(ctx, "api", WithMetadata("zone", "a"))
	if err != nil {
		t.Fatal(err)
	}
	same("zone a", ids(got), "a1", "a2")
	got, _ = r.Lookup(ctx, "api", WithMetadata("zone", "a"), WithMetadata("version", "1"))
	same("zone a, version 1", ids(got), "a1")
	got, _ = r.Lookup(ctx, "api", WithMetadata("zone", "c"))
	same("zone c", ids(got))
	got, _ = r.Lookup(ctx, "api", Matching(func(in Instance) bool { return in.Metadata["version"] != "2" }))
	same("not version 2", ids(got), "a1", "b1")

	v1, err := r.NewResolver(ctx, "api", WithMetadata("version", "1"))
	if err != nil {
		t.Fatal(err)
	}
	defer v1.Close()
	same("resolver of version 1", ids(v1.Instances()), "a1", "b1")
	ch := v1.Changed()
	reg("c2", "c", "2") // not version 1: no change for this resolver
	reg("c1", "c", "1")
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Changed never closed after a matching instance registered")
	}
	coordtest.Eventually(t, 10*time.Second, func() bool { return len(v1.Instances()) == 3 }, "c1 never reached the resolver")
	same("resolver after c1, c2", ids(v1.Instances()), "a1", "b1", "c1")
	// An update that makes an instance stop matching removes it.
	if err := a1.Update(ctx, func(in *Instance) { in.Metadata["version"] = "2" }); err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 10*time.Second, func() bool { return len(v1.Instances()) == 2 }, "a1 stayed after it stopped matching")

	all, err := r.NewResolver(ctx, "api")
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	for range 6 {
		in, err := all.Pick(PreferZone, "a")
		if err != nil || in.Metadata["zone"] != "a" {
			t.Fatalf("PreferZone a: %+v %v", in, err)
		}
	}
	seen := map[string]bool{}
	for range 4 {
		in, _ := all.Pick(PreferZone, "a")
		seen[in.ID] = true
	}
	if !seen["a1"] || !seen["a2"] {
		t.Fatalf("PreferZone does not cycle through the zone: %v", seen)
	}
	all.ReportDown("a1", time.Minute)
	all.ReportDown("a2", time.Minute)
	if in, err := all.Pick(PreferZone, "a"); err != nil || in.Metadata["zone"] == "a" {
		t.Fatalf("PreferZone with its zone down: %+v %v, want another zone", in, err)
	}
}
