package sm_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"slices"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

func snapshotBytes(t testing.TB, v *sm.View) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := v.WriteTo(&buf, nil); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	return buf.Bytes()
}

func recoverMachine(t testing.TB, snap []byte) *sm.Machine {
	t.Helper()
	m := sm.New(nil)
	if err := m.RecoverFromSnapshot(bytes.NewReader(snap), nil, nil); err != nil {
		t.Fatalf("RecoverFromSnapshot: %v", err)
	}
	return m
}

// richState builds a store with history, tombstones, leases of every origin
// and a compaction.
func richState(t testing.TB) *harness {
	h := newHarness(t)
	h.grant(1, 1000)
	h.grant(2, 2000)
	h.grant(3, 3000)
	for i := 0; i < 5; i++ {
		h.put("hist", fmt.Sprint(i))
	}
	h.putLease("l/a", "1", 1)
	h.putLease("l/b", "1", 1)
	h.putLease("l/c", "1", 2)
	h.put("dir/x", "1")
	h.put("dir/sub/y", "1")
	h.del("dir/x", "")
	h.put("tomb", "1")
	h.del("tomb", "")
	h.txn(sm.Op{Kind: sm.OpPut, Key: "mat", Value: []byte("m"), Lease: 77, LeaseTTL: 7000})
	h.mustOK(&sm.Command{Kind: sm.CmdKeepAlive, LeaseID: 2})
	h.put("hist", "5")
	compactAt := h.put("c", "1") // compact at a put revision
	h.put("hist", "6")
	h.del("l/b", "")
	h.put("dir/x", "again")
	h.putLease("l/c", "2", 1) // moves l/c to lease 1
	h.mustOK(&sm.Command{Kind: sm.CmdRevoke, LeaseID: 3})
	if res := h.compact(compactAt); res.Code != sm.CodeOK {
		t.Fatalf("compact: %d", res.Code)
	}
	h.put("after", "1")
	h.del("hist", "")
	h.mustOK(&sm.Command{Kind: sm.CmdMember, Member: sm.MemberRecord{ID: 4, Name: "m4", Address: "h4:1"}})
	h.mustOK(&sm.Command{Kind: sm.CmdMember, Member: sm.MemberRecord{ID: 2, Name: "m2"}})
	return h
}

// sameState checks every observable of two views agrees.
func sameState(t testing.TB, a, b *sm.View) {
	t.Helper()
	if a.Hash() != b.Hash() {
		t.Fatalf("hash %x != %x", a.Hash(), b.Hash())
	}
	if a.Revision() != b.Revision() || a.CompactRevision() != b.CompactRevision() || a.Applied() != b.Applied() {
		t.Fatalf("rev %d/%d compact %d/%d applied %d/%d", a.Revision(), b.Revision(), a.CompactRevision(), b.CompactRevision(), a.Applied(), b.Applied())
	}
	if la, lb := a.Leases(), b.Leases(); !slices.Equal(la, lb) {
		t.Fatalf("leases %v != %v", la, lb)
	}
	if ma, mb := a.Members(), b.Members(); !slices.Equal(ma, mb) {
		t.Fatalf("members %v != %v", ma, mb)
	}
	for _, l := range a.Leases() {
		if ka, kb := a.LeaseKeys(l.ID), b.LeaseKeys(l.ID); !slices.Equal(ka, kb) {
			t.Fatalf("lease %d keys %v != %v", l.ID, ka, kb)
		}
	}
	from := max(a.CompactRevision(), 1)
	for rev := from; rev <= a.Revision(); rev++ {
		ra, rb := rangeAll(t, a, rev), rangeAll(t, b, rev)
		if !kvsEqual(ra, rb) {
			t.Fatalf("range at %d:\n%s\n%s", rev, fmtKVs(ra), fmtKVs(rb))
		}
	}
	// Events from the compaction revision on, that revision included.
	ea, la := a.Events(from, a.Revision(), "", "\x00", 1<<30)
	eb, lb := b.Events(from, b.Revision(), "", "\x00", 1<<30)
	if la != lb || !eventsEqual(ea, eb) {
		t.Fatalf("events (last %d/%d):\n%s\n--\n%s", la, lb, fmtEvents(ea), fmtEvents(eb))
	}
	for _, dir := range []string{"", "a/", "dir/", "l/"} {
		la, lb := a.List(dir), b.List(dir)
		if len(la) != len(lb) {
			t.Fatalf("List(%q): %d != %d entries", dir, len(la), len(lb))
		}
		for i := range la {
			if la[i].Name != lb[i].Name || la[i].Dir != lb[i].Dir || !kvEqual(la[i].KV, lb[i].KV) {
				t.Fatalf("List(%q)[%d]: %+v != %+v", dir, i, la[i], lb[i])
			}
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	h := richState(t)
	v := h.view()
	if v.CompactRevision() == 0 || len(v.Leases()) != 3 {
		t.Fatalf("setup: compact %d leases %v", v.CompactRevision(), v.Leases())
	}
	snap := snapshotBytes(t, v)
	m2 := recoverMachine(t, snap)
	sameState(t, v, m2.View())
	if got := m2.View().Members(); len(got) != 2 || got[0] != (sm.MemberRecord{ID: 2, Name: "m2"}) || got[1].Address != "h4:1" {
		t.Fatalf("members %v", got)
	}
	if l, _ := m2.View().Lease(77); l.TTL != 7000 {
		t.Fatalf("materialised lease %+v", l)
	}
	if got := m2.View().LeaseKeys(1); !slices.Equal(got, []string{"l/a", "l/c"}) {
		t.Fatalf("lease 1 keys %v", got)
	}
	// The recovered machine writes the very same snapshot.
	if again := snapshotBytes(t, m2.View()); !bytes.Equal(again, snap) {
		t.Fatal("snapshot of the recovered machine differs")
	}
	// The dragonboat path writes the same bytes.
	ctx, err := h.m.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := h.m.SaveSnapshot(ctx, &buf, nil, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), snap) {
		t.Fatal("SaveSnapshot differs from WriteTo")
	}
	// Both machines go on identically.
	h2 := &harness{t: t, m: m2, idx: h.idx}
	more := []*sm.Command{
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp("hist", "new"), putOp("c", "2")}}},
		{Kind: sm.CmdRevoke, LeaseID: 1},
		{Kind: sm.CmdExpire, Expire: []sm.ExpireItem{{ID: 2, Renew: 0}}},
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpPut, Key: "mat2", Lease: 77}}}},
		{Kind: sm.CmdCompact, Revision: h.view().Revision()},
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpDelete, Key: "", End: "\x00"}}}},
		{Kind: sm.CmdGrant, LeaseID: 1, TTL: 5},
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpPut, Key: "z", Lease: 1}}}},
	}
	for i, c := range more {
		r1, e1 := h.apply(c)
		r2, e2 := h2.apply(c)
		if !bytes.Equal(sm.EncodeResult(r1), sm.EncodeResult(r2)) || !eventsEqual(e1, e2) {
			t.Fatalf("#%d: results differ: %+v / %+v", i, r1, r2)
		}
		if h.view().Hash() != h2.view().Hash() {
			t.Fatalf("#%d: hashes differ", i)
		}
	}
	sameState(t, h.view(), h2.view())
}

func TestSnapshotReplacesExistingState(t *testing.T) {
	h := richState(t)
	other, _ := historyScenario(t)
	other.grant(55, 1)
	snap := snapshotBytes(t, h.view())
	if err := other.m.RecoverFromSnapshot(bytes.NewReader(snap), nil, nil); err != nil {
		t.Fatal(err)
	}
	sameState(t, h.view(), other.m.View())
	if _, ok := other.m.View().Lease(55); ok {
		t.Fatal("old lease survived recovery")
	}
}

func TestSnapshotFreshMachine(t *testing.T) {
	m := sm.New(nil)
	snap := snapshotBytes(t, m.View())
	m2 := recoverMachine(t, snap)
	sameState(t, m.View(), m2.View())
	if m2.View().Revision() != 1 {
		t.Fatalf("rev %d", m2.View().Revision())
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after < len(p) {
		return 0, errors.New("disk full")
	}
	w.after -= len(p)
	return len(p), nil
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("read error") }

func TestSnapshotLarge(t *testing.T) {
	h := newHarness(t)
	val := bytes.Repeat([]byte("v"), 40)
	for i := 0; i < 5000; i++ {
		h.txn(sm.Op{Kind: sm.OpPut, Key: fmt.Sprintf("k%05d", i%2500), Value: val})
	}
	if h.view().Revision() != 5001 {
		t.Fatal(h.view().Revision())
	}
	snap := snapshotBytes(t, h.view())
	if len(snap) < 128<<10 {
		t.Fatalf("snapshot only %d bytes", len(snap))
	}
	m2 := recoverMachine(t, snap).View()
	if m2.Hash() != h.view().Hash() || m2.Revision() != 5001 {
		t.Fatal("large snapshot round trip differs")
	}
	for _, rev := range []int64{1, 2, 2501, 2502, 4000, 5001} {
		if a, b := rangeAll(t, h.view(), rev), rangeAll(t, m2, rev); !kvsEqual(a, b) {
			t.Fatalf("range at %d differs", rev)
		}
	}
	ea, _ := h.view().Events(1, 5001, "", "\x00", 1<<30)
	eb, _ := m2.Events(1, 5001, "", "\x00", 1<<30)
	if len(ea) != 5000 || !eventsEqual(ea, eb) {
		t.Fatalf("events differ: %d / %d", len(ea), len(eb))
	}

	// done closed: WriteTo stops with ErrStopped.
	done := make(chan struct{})
	close(done)
	if err := h.view().WriteTo(io.Discard, done); !errors.Is(err, sm.ErrStopped) {
		t.Fatalf("WriteTo with done closed: %v", err)
	}
	// Writer errors surface, early or at the final flush.
	for _, after := range []int{0, 100, 70 << 10, len(snap) - 1} {
		if err := h.view().WriteTo(&failWriter{after: after}, nil); err == nil {
			t.Fatalf("write failing after %d bytes: no error", after)
		}
	}
	small := snapshotBytes(t, sm.New(nil).View())
	if err := sm.New(nil).View().WriteTo(&failWriter{after: len(small) - 1}, nil); err == nil {
		t.Fatal("small snapshot write error lost")
	}
}

func TestSnapshotRecoverErrors(t *testing.T) {
	h := richState(t)
	snap := snapshotBytes(t, h.view())
	victim, _ := historyScenario(t)
	hash, rev := victim.view().Hash(), victim.view().Revision()
	try := func(name string, b []byte) {
		t.Helper()
		if err := victim.m.RecoverFromSnapshot(bytes.NewReader(b), nil, nil); err == nil {
			t.Fatalf("%s: recovered from a bad snapshot", name)
		}
		if victim.view().Hash() != hash || victim.view().Revision() != rev {
			t.Fatalf("%s: failed recovery changed the state", name)
		}
	}
	for n := 0; n < len(snap); n++ {
		try(fmt.Sprintf("prefix %d", n), snap[:n])
	}
	bad := func(i int, v byte) []byte { c := slices.Clone(snap); c[i] = v; return c }
	try("bad magic", bad(0, 'X'))
	try("version 0", bad(4, 0))
	try("version 5", bad(4, 5))
	try("trailing byte", append(slices.Clone(snap), 0))
	try("empty", nil)
	if err := victim.m.RecoverFromSnapshot(failReader{}, nil, nil); err == nil {
		t.Fatal("reader error lost")
	}

	// Hand-built snapshots with a corrupt history.
	type r struct {
		key  string
		rev  int64
		flag byte
	}
	build := func(rev int64, recs ...r) []byte {
		b := []byte("CKSN\x01")
		b = binary.AppendVarint(b, rev)
		b = binary.AppendVarint(b, 0) // compact
		b = binary.AppendUvarint(b, 9)
		b = binary.AppendUvarint(b, 0) // leases
		b = binary.AppendUvarint(b, 0) // members
		b = binary.AppendUvarint(b, uint64(len(recs)))
		for _, x := range recs {
			b = binary.AppendUvarint(b, uint64(len(x.key)))
			b = append(b, x.key...)
			b = binary.AppendVarint(b, x.rev)
			b = append(b, x.flag)
			if x.flag == 1 {
				b = append(b, 1, 'v')
				b = binary.AppendVarint(b, x.rev)
				b = binary.AppendVarint(b, 1)
				b = binary.AppendVarint(b, 0)
			}
		}
		return b
	}
	good := build(5, r{"a", 3, 1}, r{"a", 2, 0}, r{"b", 5, 1})
	m := recoverMachine(t, good)
	if kvs := rangeAll(t, m.View(), 0); len(kvs) != 2 || kvs[0].Key != "a" || kvs[0].ModRevision != 3 {
		t.Fatalf("hand-built snapshot: %s", fmtKVs(kvs))
	}
	try("keys out of order", build(5, r{"b", 3, 1}, r{"a", 2, 1}))
	try("revisions ascending", build(5, r{"a", 2, 1}, r{"a", 3, 1}))
	try("duplicate record", build(5, r{"a", 3, 1}, r{"a", 3, 1}))
	try("record above the revision", build(5, r{"a", 6, 1}))
	try("record at revision 0", build(5, r{"a", 0, 1}))
	try("negative record revision", build(5, r{"a", -1, 1}))
	try("bad record flag", build(5, r{"a", 3, 2}))
}

// Random corruptions never panic; what decodes is a fixed point of
// snapshot/recover.
func TestSnapshotRandomCorruption(t *testing.T) {
	snap := snapshotBytes(t, richState(t).view())
	rng := rand.New(rand.NewSource(7))
	ok := 0
	for i := 0; i < 3000; i++ {
		c := slices.Clone(snap)
		for j := 0; j <= rng.Intn(3); j++ {
			c[rng.Intn(len(c))] = byte(rng.Intn(256))
		}
		m := sm.New(nil)
		if err := m.RecoverFromSnapshot(bytes.NewReader(c), nil, nil); err != nil {
			continue
		}
		ok++
		s1 := snapshotBytes(t, m.View())
		m2 := recoverMachine(t, s1)
		if m2.View().Hash() != m.View().Hash() || !bytes.Equal(snapshotBytes(t, m2.View()), s1) {
			t.Fatalf("corruption %d: recovered state is not a fixed point", i)
		}
	}
	t.Logf("%d of 3000 corruptions decoded", ok)
}
