package sm_test

import (
	"testing"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// TestNoSpaceAlarm: with the alarm raised, what grows the store (a Txn with
// a put in either branch, a grant) is refused and changes nothing; what
// shrinks it or reads works; clearing the alarm lets writes in again; the
// alarm survives a snapshot.
func TestNoSpaceAlarm(t *testing.T) {
	h := newHarness(t)
	h.put("/a", "1")
	h.mustOK(&sm.Command{Kind: sm.CmdGrant, LeaseID: 7, TTL: 10000})
	before := h.view().Bytes()
	if before <= 0 {
		t.Fatalf("bytes %d after a put and a grant", before)
	}
	h.put("/a", "22")
	if h.view().Bytes() <= before {
		t.Fatal("an overwrite did not grow the count (the old version is history)")
	}
	h.mustOK(&sm.Command{Kind: sm.CmdAlarm, Alarm: sm.AlarmNoSpace, Activate: true})
	if !h.view().NoSpace() {
		t.Fatal("alarm not raised")
	}
	rev := h.view().Revision()
	refused := []*sm.Command{
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp("/b", "x")}}},
		{Kind: sm.CmdTxn, Txn: sm.Txn{Compares: []sm.Compare{{Target: sm.TargetVersion, Key: "/a", Int: 99}},
			Then: []sm.Op{{Kind: sm.OpRange, Key: "/a"}}, Else: []sm.Op{putOp("/b", "x")}}},
		{Kind: sm.CmdGrant, LeaseID: 8, TTL: 10000},
	}
	for _, c := range refused {
		if res, _ := h.apply(c); res.Code != sm.CodeNoSpace {
			t.Fatalf("%+v under the alarm: code %d, want CodeNoSpace", c, res.Code)
		}
	}
	if h.view().Revision() != rev {
		t.Fatal("a refused command changed the revision")
	}
	if res, _ := h.txn(sm.Op{Kind: sm.OpRange, Key: "/a"}); res.Code != sm.CodeOK {
		t.Fatalf("a read-only Txn under the alarm: %d", res.Code)
	}
	grown := h.view().Bytes()
	h.mustOK(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpDelete, Key: "/a"}}}})
	h.mustOK(&sm.Command{Kind: sm.CmdKeepAlive, LeaseID: 7})
	h.mustOK(&sm.Command{Kind: sm.CmdRevoke, LeaseID: 7})
	h.mustOK(&sm.Command{Kind: sm.CmdCompact, Revision: h.view().Revision()})
	if h.view().Bytes() >= grown {
		t.Fatalf("delete, revoke and compact left %d bytes of %d", h.view().Bytes(), grown)
	}
	if err := h.m.CheckTrees(); err != nil {
		t.Fatal(err)
	}
	// The alarm survives a snapshot, and so does the count.
	other := recoverMachine(t, snapshotBytes(t, h.view()))
	if !other.View().NoSpace() || other.View().Bytes() != h.view().Bytes() || other.View().Hash() != h.view().Hash() {
		t.Fatalf("after a snapshot: alarm %v, bytes %d (want %d)", other.View().NoSpace(), other.View().Bytes(), h.view().Bytes())
	}
	h.mustOK(&sm.Command{Kind: sm.CmdAlarm, Alarm: sm.AlarmNoSpace, Activate: false})
	h.put("/b", "back")
	if res, _ := h.apply(&sm.Command{Kind: sm.CmdAlarm, Alarm: 99, Activate: true}); res.Code != sm.CodeBadCommand {
		t.Fatalf("an unknown alarm: code %d", res.Code)
	}
	if !sm.HasPut(&sm.Txn{Else: []sm.Op{putOp("/x", "y")}}) || sm.HasPut(&sm.Txn{Then: []sm.Op{{Kind: sm.OpDelete, Key: "/x"}}}) {
		t.Fatal("HasPut")
	}
}
