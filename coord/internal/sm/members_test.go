package sm_test

import (
	"slices"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

func TestMembers(t *testing.T) {
	h := newHarness(t)
	h.put("k", "v")
	rev, hash := h.view().Revision(), h.view().Hash()
	if len(h.view().Members()) != 0 {
		t.Fatal("fresh machine has members")
	}
	member := func(id uint64, name, addr string) (*sm.Result, []sm.Event) {
		return h.apply(&sm.Command{Kind: sm.CmdMember, Member: sm.MemberRecord{ID: id, Name: name, Address: addr}})
	}
	for _, tc := range []struct {
		id   uint64
		name string
	}{{0, "n"}, {5, ""}, {0, ""}} {
		if res, _ := member(tc.id, tc.name, "a:1"); res.Code != sm.CodeBadCommand || res.Revision != rev {
			t.Fatalf("member %d %q: %+v", tc.id, tc.name, res)
		}
	}
	if h.view().Hash() != hash || len(h.view().Members()) != 0 {
		t.Fatal("refused member record changed the state")
	}
	res, ev := member(9, "nine", "h9:1")
	if res.Code != sm.CodeOK || res.Revision != rev || len(ev) != 0 {
		t.Fatalf("member: %+v", res)
	}
	if h.view().Hash() == hash {
		t.Fatal("hash ignores members")
	}
	member(3, "three", "")
	member(9, "nine", "h9:2") // replaces
	want := []sm.MemberRecord{{ID: 3, Name: "three"}, {ID: 9, Name: "nine", Address: "h9:2"}}
	if got := h.view().Members(); !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	if h.view().Revision() != rev {
		t.Fatal("member records bumped the revision")
	}
	// Snapshots carry them.
	m2 := recoverMachine(t, snapshotBytes(t, h.view()))
	if got := m2.View().Members(); !slices.Equal(got, want) || m2.View().Hash() != h.view().Hash() {
		t.Fatalf("recovered members %v", got)
	}
}
