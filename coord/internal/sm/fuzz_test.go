package sm_test

import (
	"bytes"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// fuzzMachine returns a machine with a little of everything: history,
// tombstones, leases, a compaction and a member record, so that fuzzed
// commands meet real state.
func fuzzMachine(t testing.TB) (*sm.Machine, uint64) {
	m := sm.New(nil)
	idx := uint64(0)
	for _, c := range []*sm.Command{
		{Kind: sm.CmdGrant, LeaseID: 1, TTL: 1000},
		{Kind: sm.CmdGrant, LeaseID: 2, TTL: 2000},
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp("a", "1"), putOp("a/1", "x"), {Kind: sm.OpPut, Key: "b", Lease: 1}}}},
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp("a", "2"), {Kind: sm.OpPut, Key: "c", Lease: 2}}}},
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpDelete, Key: "a/1"}}}},
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp("d/e", "3"), putOp("a", "3")}}},
		{Kind: sm.CmdCompact, Revision: 3},
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp("a/1", "y")}}},
		{Kind: sm.CmdMember, Member: sm.MemberRecord{ID: 7, Name: "seven", Address: "h:7"}},
	} {
		idx++
		if res, _ := m.Apply(idx, sm.EncodeCommand(c)); res.Code != sm.CodeOK {
			t.Fatalf("fuzz machine setup: %+v: code %d", c, res.Code)
		}
	}
	return m, idx
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range sampleCommands() {
		f.Add(sm.EncodeCommand(c))
	}
	f.Add(sm.EncodeCommand(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{
		Compares: []sm.Compare{{Target: sm.TargetMod, Result: sm.CmpLess, Key: "a", Int: 5}},
		Then:     []sm.Op{{Kind: sm.OpRange, Key: "a", End: "\x00", Range: sm.RangeOpts{Revision: 4, Limit: 2, Sorted: true, SortTarget: sm.SortMod}}},
		Else:     []sm.Op{{Kind: sm.OpDelete, Key: "a", End: "b", PrevKV: true}, {Kind: sm.OpPut, Key: "z", Lease: 9, LeaseTTL: 10}},
	}}))
	f.Add(sm.EncodeCommand(&sm.Command{Kind: sm.CmdCompact, Revision: 5}))
	f.Add(sm.EncodeCommand(&sm.Command{Client: 3, Seq: 9, Kind: sm.CmdCompact, Revision: 5}))
	f.Add(sm.EncodeCommand(&sm.Command{Kind: sm.CmdRevoke, LeaseID: 1}))
	f.Add(sm.EncodeCommand(&sm.Command{Kind: sm.CmdExpire, Expire: []sm.ExpireItem{{ID: 2, Renew: 2}}}))
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := sm.DecodeCommand(data)
		m, idx := fuzzMachine(t)
		v0 := m.View()
		res, ev := m.Apply(idx+1, data)
		v := m.View()
		if err != nil {
			if res.Code != sm.CodeBadCommand || v.Hash() != v0.Hash() || v.Revision() != v0.Revision() || len(ev) != 0 {
				t.Fatalf("undecodable command applied: %+v", res)
			}
			return
		}
		// Decoding is a function of the meaning: re-encode, decode, compare.
		b := sm.EncodeCommand(c)
		c2, err := sm.DecodeCommand(b)
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v\n%+v", err, c)
		}
		if !deepEqual(c, c2) {
			t.Fatalf("round trip:\n%+v\n%+v", c, c2)
		}
		if b2 := sm.EncodeCommand(c2); !bytes.Equal(b, b2) {
			t.Fatal("encoding is not a fixed point")
		}
		// The canonical bytes apply exactly like the fuzzed ones.
		m2, _ := fuzzMachine(t)
		res2, ev2 := m2.Apply(idx+1, b)
		if !bytes.Equal(sm.EncodeResult(res), sm.EncodeResult(res2)) || !eventsEqual(ev, ev2) || v.Hash() != m2.View().Hash() {
			t.Fatalf("fuzzed and canonical bytes apply differently: %+v / %+v", res, res2)
		}
		// Invariants of any applied command.
		if res.Revision != v.Revision() {
			t.Fatalf("result revision %d, view %d", res.Revision, v.Revision())
		}
		if res.Code != sm.CodeOK && (v.Hash() != v0.Hash() || len(ev) != 0 || len(v.Leases()) != len(v0.Leases())) {
			t.Fatalf("code %d but the state changed", res.Code)
		}
		bumped := v.Revision() - v0.Revision()
		if bumped != 0 && bumped != 1 || (bumped == 1) != (len(ev) > 0) {
			t.Fatalf("revision moved by %d with %d events", bumped, len(ev))
		}
		for _, e := range ev {
			if e.KV == nil || e.KV.ModRevision != v.Revision() {
				t.Fatalf("event %s at revision %d", fmtEvent(e), v.Revision())
			}
		}
		if r, err := sm.DecodeResult(sm.EncodeResult(res)); err != nil || !deepEqual(normResult(r), normResult(res)) {
			t.Fatalf("result round trip: %v", err)
		}
		// The resulting state survives a snapshot.
		var buf bytes.Buffer
		if err := v.WriteTo(&buf, nil); err != nil {
			t.Fatal(err)
		}
		m3 := sm.New(nil)
		if err := m3.RecoverFromSnapshot(bytes.NewReader(buf.Bytes()), nil, nil); err != nil {
			t.Fatalf("snapshot of a fuzzed state: %v", err)
		}
		if m3.View().Hash() != v.Hash() {
			t.Fatal("snapshot of a fuzzed state hashes differently")
		}
	})
}

func FuzzSnapshotDecode(f *testing.F) {
	f.Add(snapshotBytes(f, sm.New(nil).View()))
	fm, _ := fuzzMachine(f)
	f.Add(snapshotBytes(f, fm.View()))
	f.Add(snapshotBytes(f, richState(f).view()))
	h, _ := historyScenario(f)
	f.Add(snapshotBytes(f, h.view()))
	f.Add([]byte("CKSN"))
	f.Add([]byte("CKSN\x01"))
	fresh := sm.New(nil).View().Hash()
	f.Fuzz(func(t *testing.T, data []byte) {
		m := sm.New(nil)
		if err := m.RecoverFromSnapshot(bytes.NewReader(data), nil, nil); err != nil {
			if m.View().Hash() != fresh || m.View().Revision() != 1 {
				t.Fatal("failed recovery changed the machine")
			}
			return
		}
		// What decodes is a fixed point of snapshot/recover.
		v := m.View()
		s1 := snapshotBytes(t, v)
		m2 := sm.New(nil)
		if err := m2.RecoverFromSnapshot(bytes.NewReader(s1), nil, nil); err != nil {
			t.Fatalf("re-written snapshot does not recover: %v", err)
		}
		if m2.View().Hash() != v.Hash() || !bytes.Equal(snapshotBytes(t, m2.View()), s1) {
			t.Fatal("snapshot is not a fixed point")
		}
		// Reading a recovered state never panics.
		v.Range(rangeOp("", "\x00", sm.RangeOpts{}))
		v.Range(rangeOp("", "\x00", sm.RangeOpts{Revision: max(v.CompactRevision(), 1), Sorted: true, SortTarget: sm.SortMod}))
		v.Events(max(v.CompactRevision(), 1), v.Revision(), "", "\x00", 100)
		v.List("")
		for _, l := range v.Leases() {
			v.LeaseKeys(l.ID)
		}
	})
}

func FuzzDecodeResult(f *testing.F) {
	for _, r := range sampleResults() {
		f.Add(sm.EncodeResult(r))
	}
	h := newHarness(f)
	h.grant(1, 100)
	for _, c := range sampleCommands() {
		res, _ := h.apply(c)
		f.Add(sm.EncodeResult(res))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := sm.DecodeResult(data)
		if err != nil {
			return
		}
		b := sm.EncodeResult(r)
		r2, err := sm.DecodeResult(b)
		if err != nil {
			t.Fatalf("re-encoded result does not decode: %v", err)
		}
		if !deepEqual(r, r2) {
			t.Fatalf("round trip:\n%+v\n%+v", r, r2)
		}
		if !bytes.Equal(sm.EncodeResult(r2), b) {
			t.Fatal("encoding is not a fixed point")
		}
	})
}
