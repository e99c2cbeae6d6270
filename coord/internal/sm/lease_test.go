package sm_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

func TestLeaseGrant(t *testing.T) {
	h := newHarness(t)
	h.put("k", "v")
	rev := h.view().Revision()
	res, ev := h.apply(&sm.Command{Kind: sm.CmdGrant, LeaseID: 10, TTL: 1500})
	if res.Code != sm.CodeOK || res.TTL != 1500 || res.Revision != rev || len(ev) != 0 {
		t.Fatalf("grant: %+v", res)
	}
	grantIdx := h.idx
	if l, ok := h.view().Lease(10); !ok || l != (sm.LeaseInfo{ID: 10, TTL: 1500, Renew: grantIdx}) {
		t.Fatalf("lease: %+v %v", l, ok)
	}
	hash := h.view().Hash()
	for _, tc := range []struct {
		id, ttl int64
		want    sm.Code
	}{
		{10, 1500, sm.CodeLeaseExists},
		{10, 9999, sm.CodeLeaseExists},
		{0, 1000, sm.CodeBadCommand},
		{-1, 1000, sm.CodeBadCommand},
		{11, 0, sm.CodeBadCommand},
		{11, -5, sm.CodeBadCommand},
	} {
		res, _ := h.apply(&sm.Command{Kind: sm.CmdGrant, LeaseID: tc.id, TTL: tc.ttl})
		if res.Code != tc.want || res.Revision != rev {
			t.Fatalf("grant %d/%d: %+v, want code %d", tc.id, tc.ttl, res, tc.want)
		}
	}
	if h.view().Hash() != hash {
		t.Fatal("refused grants changed the state")
	}
	if l, _ := h.view().Lease(10); l.TTL != 1500 || l.Renew != grantIdx {
		t.Fatalf("duplicate grant altered the lease: %+v", l)
	}
	if _, ok := h.view().Lease(11); ok {
		t.Fatal("bad grant created a lease")
	}
	h.grant(3, 100)
	h.grant(20, 200)
	got := h.view().Leases()
	want := []sm.LeaseInfo{{3, 100, h.idx - 1}, {10, 1500, grantIdx}, {20, 200, h.idx}}
	if !slices.Equal(got, want) {
		t.Fatalf("leases %v, want %v", got, want)
	}
	if h.view().Revision() != rev {
		t.Fatal("grants bumped the revision")
	}
}

func TestLeaseKeepAlive(t *testing.T) {
	h := newHarness(t)
	h.grant(1, 1000)
	rev := h.view().Revision()
	h.idx += 10
	res, ev := h.apply(&sm.Command{Kind: sm.CmdKeepAlive, LeaseID: 1})
	if res.Code != sm.CodeOK || res.TTL != 1000 || res.Revision != rev || len(ev) != 0 {
		t.Fatalf("keep-alive: %+v", res)
	}
	if l, _ := h.view().Lease(1); l.Renew != h.idx || l.TTL != 1000 {
		t.Fatalf("lease after keep-alive: %+v (index %d)", l, h.idx)
	}
	for _, id := range []int64{2, 0, -1} {
		res, _ = h.apply(&sm.Command{Kind: sm.CmdKeepAlive, LeaseID: id})
		if res.Code != sm.CodeLeaseNotFound {
			t.Fatalf("keep-alive %d: %+v", id, res)
		}
	}
	if _, ok := h.view().Lease(2); ok {
		t.Fatal("keep-alive created a lease")
	}
	res, _ = h.apply(&sm.Command{Kind: sm.CmdRevoke, LeaseID: 2})
	if res.Code != sm.CodeLeaseNotFound {
		t.Fatalf("revoke unknown: %+v", res)
	}
}

func TestLeaseRevokeDeletesKeysInOneRevision(t *testing.T) {
	h := newHarness(t)
	h.grant(1, 1000)
	h.grant(2, 1000)
	h.putLease("b", "1", 1) // 2
	h.put("free", "x")      // 3
	h.putLease("a", "1", 1) // 4
	h.putLease("a", "2", 1) // 5
	h.putLease("c", "1", 1) // 6
	h.putLease("o", "1", 2) // 7
	if got := h.view().LeaseKeys(1); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("lease keys %v", got)
	}
	before := map[string]*sm.KV{}
	for _, kv := range rangeAll(t, h.view(), 0) {
		before[kv.Key] = kv
	}
	res, ev := h.mustOK(&sm.Command{Kind: sm.CmdRevoke, LeaseID: 1})
	if res.Revision != 8 || h.view().Revision() != 8 {
		t.Fatalf("revoke revision %d", res.Revision)
	}
	want := []sm.Event{
		{Delete: true, KV: &sm.KV{Key: "a", ModRevision: 8}, PrevKV: before["a"]},
		{Delete: true, KV: &sm.KV{Key: "b", ModRevision: 8}, PrevKV: before["b"]},
		{Delete: true, KV: &sm.KV{Key: "c", ModRevision: 8}, PrevKV: before["c"]},
	}
	if before["a"].Version != 2 || before["a"].Lease != 1 {
		t.Fatalf("setup %s", fmtKV(before["a"]))
	}
	wantEvents(t, ev, want)
	hist, last := h.view().Events(8, 8, "", "\x00", 100)
	wantEvents(t, hist, want)
	if last != 8 {
		t.Fatalf("last %d", last)
	}
	if got := keysOf(rangeAll(t, h.view(), 0)); !slices.Equal(got, []string{"free", "o"}) {
		t.Fatalf("left %v", got)
	}
	if _, ok := h.view().Lease(1); ok || len(h.view().LeaseKeys(1)) != 0 {
		t.Fatal("lease 1 survived")
	}
	if got := h.view().LeaseKeys(2); !slices.Equal(got, []string{"o"}) {
		t.Fatalf("lease 2 keys %v", got)
	}
	// Revoking a lease without keys removes it without a revision.
	h.grant(3, 1000)
	res, ev = h.mustOK(&sm.Command{Kind: sm.CmdRevoke, LeaseID: 3})
	if res.Revision != 8 || len(ev) != 0 {
		t.Fatalf("empty revoke: %+v", res)
	}
	if _, ok := h.view().Lease(3); ok {
		t.Fatal("lease 3 survived")
	}
	// The lease id is free again.
	h.grant(1, 5)
	if l, _ := h.view().Lease(1); l.TTL != 5 {
		t.Fatalf("regrant %+v", l)
	}
}

func TestLeaseExpire(t *testing.T) {
	h := newHarness(t)
	h.grant(1, 1000)
	grant1 := h.idx
	h.grant(2, 1000)
	grant2 := h.idx
	h.putLease("k1", "v", 1) // 2
	h.putLease("k2", "v", 2) // 3
	h.put("k3", "v")         // 4
	h.mustOK(&sm.Command{Kind: sm.CmdKeepAlive, LeaseID: 1})
	ka1 := h.idx

	// A stale expire (the lease was renewed since) is a no-op.
	hash := h.view().Hash()
	res, ev := h.mustOK(&sm.Command{Kind: sm.CmdExpire, Expire: []sm.ExpireItem{{ID: 1, Renew: grant1}}})
	if res.Revision != 4 || len(ev) != 0 || h.view().Hash() != hash {
		t.Fatalf("stale expire acted: %+v", res)
	}
	if _, ok := h.view().Lease(1); !ok {
		t.Fatal("stale expire removed the lease")
	}
	// Unknown leases and future renew indexes are ignored too.
	h.mustOK(&sm.Command{Kind: sm.CmdExpire, Expire: []sm.ExpireItem{{ID: 9, Renew: 1}, {ID: 2, Renew: grant2 + 100}}})
	if h.view().Hash() != hash {
		t.Fatal("no-op expire changed the state")
	}
	// Both leases expire in one command, one revision.
	res, ev = h.mustOK(&sm.Command{Kind: sm.CmdExpire, Expire: []sm.ExpireItem{{ID: 1, Renew: ka1}, {ID: 2, Renew: grant2}, {ID: 1, Renew: ka1}}})
	if res.Revision != 5 || len(ev) != 2 || ev[0].KV.Key != "k1" || ev[1].KV.Key != "k2" || !ev[0].Delete || !ev[1].Delete ||
		ev[0].KV.ModRevision != 5 || ev[1].KV.ModRevision != 5 || ev[0].PrevKV.Lease != 1 || ev[1].PrevKV.Lease != 2 {
		t.Fatalf("expire: %+v\n%s", res, fmtEvents(ev))
	}
	if len(h.view().Leases()) != 0 {
		t.Fatalf("leases left: %v", h.view().Leases())
	}
	if got := keysOf(rangeAll(t, h.view(), 0)); !slices.Equal(got, []string{"k3"}) {
		t.Fatalf("keys left %v", got)
	}
}

func TestLeaseAttachmentMoves(t *testing.T) {
	h := newHarness(t)
	h.grant(1, 1000)
	h.grant(2, 1000)
	h.putLease("k", "1", 1)
	h.putLease("j", "1", 1)
	check := func(id int64, want ...string) {
		t.Helper()
		if got := h.view().LeaseKeys(id); !slices.Equal(got, want) {
			t.Fatalf("lease %d keys %v, want %v", id, got, want)
		}
	}
	check(1, "j", "k")
	check(2)
	h.putLease("k", "2", 2)
	check(1, "j")
	check(2, "k")
	if kv := get(t, h.view(), "k"); kv.Lease != 2 || kv.Version != 2 {
		t.Fatalf("k %s", fmtKV(kv))
	}
	// Revoking the old lease leaves k alone.
	h.mustOK(&sm.Command{Kind: sm.CmdRevoke, LeaseID: 1})
	if get(t, h.view(), "k") == nil || get(t, h.view(), "j") != nil {
		t.Fatal("revoke of the old lease hit the moved key")
	}
	// A put without a lease detaches.
	h.put("k", "3")
	check(2)
	if kv := get(t, h.view(), "k"); kv.Lease != 0 {
		t.Fatalf("k %s", fmtKV(kv))
	}
	rev := h.view().Revision()
	h.mustOK(&sm.Command{Kind: sm.CmdRevoke, LeaseID: 2})
	if get(t, h.view(), "k") == nil || h.view().Revision() != rev {
		t.Fatal("revoke of a detached lease deleted k")
	}
	// A delete detaches.
	h.grant(3, 1000)
	h.putLease("d", "1", 3)
	h.putLease("d", "2", 3) // same lease again: still attached once
	check(3, "d")
	h.del("d", "")
	check(3)
	rev = h.view().Revision()
	h.mustOK(&sm.Command{Kind: sm.CmdRevoke, LeaseID: 3})
	if h.view().Revision() != rev {
		t.Fatal("revoke after delete wrote")
	}
}

func TestLeaseMaterialisedByPut(t *testing.T) {
	h := newHarness(t)
	rev := h.view().Revision()
	res, _ := h.txn(sm.Op{Kind: sm.OpPut, Key: "k", Value: []byte("v"), Lease: 50, LeaseTTL: 3000})
	if res.Code != sm.CodeOK || res.Revision != rev+1 {
		t.Fatalf("%+v", res)
	}
	idx := h.idx
	if l, ok := h.view().Lease(50); !ok || l != (sm.LeaseInfo{ID: 50, TTL: 3000, Renew: idx}) {
		t.Fatalf("materialised lease %+v %v", l, ok)
	}
	if got := h.view().LeaseKeys(50); !slices.Equal(got, []string{"k"}) {
		t.Fatalf("keys %v", got)
	}
	// An existing lease is not altered by another materialising put.
	h.txn(sm.Op{Kind: sm.OpPut, Key: "k2", Lease: 50, LeaseTTL: 9999})
	if l, _ := h.view().Lease(50); l.TTL != 3000 || l.Renew != idx {
		t.Fatalf("lease altered: %+v", l)
	}
	// Without a TTL an absent lease is an error.
	res, _ = h.txn(sm.Op{Kind: sm.OpPut, Key: "k3", Lease: 51})
	if res.Code != sm.CodeLeaseNotFound {
		t.Fatalf("%+v", res)
	}
	// Granting a materialised id is refused; revoking it deletes its keys.
	if res, _ := h.apply(&sm.Command{Kind: sm.CmdGrant, LeaseID: 50, TTL: 10}); res.Code != sm.CodeLeaseExists {
		t.Fatalf("grant of materialised: %+v", res)
	}
	_, ev := h.mustOK(&sm.Command{Kind: sm.CmdRevoke, LeaseID: 50})
	if len(ev) != 2 {
		t.Fatalf("revoke events %s", fmtEvents(ev))
	}
	// Two puts materialising one lease in one Txn.
	res, _ = h.txn(sm.Op{Kind: sm.OpPut, Key: "x", Lease: 60, LeaseTTL: 10}, sm.Op{Kind: sm.OpPut, Key: "y", Lease: 60, LeaseTTL: 20})
	if l, _ := h.view().Lease(60); res.Code != sm.CodeOK || l.TTL != 10 || fmt.Sprint(h.view().LeaseKeys(60)) != "[x y]" {
		t.Fatalf("%+v %+v", res, l)
	}
}
