package sm

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
)

// White-box checks of what compaction removes from the history.

// ver is one version as eachVersion visits it; kv is nil for a tombstone.
type ver struct {
	key string
	rev int64
	kv  *KV
}

// histRecs lists every version, live or past, in key order, newest first.
func histRecs(v *View) []ver {
	var out []ver
	v.st.eachVersion(func(key string, rev int64, kv *KV) bool {
		r := ver{key: key, rev: rev}
		if kv != nil {
			c := *kv // eachVersion's kv is valid during the call only
			r.kv = &c
		}
		out = append(out, r)
		return true
	})
	return out
}

func byRevKeys(v *View) []revKey {
	var out []revKey
	v.st.byRev.Ascend(func(k revKey) bool { out = append(out, k); return true })
	return out
}

func TestCompactionDropsOldRecords(t *testing.T) {
	m := New(nil)
	idx := uint64(0)
	do := func(c *Command) {
		t.Helper()
		idx++
		if res, _ := m.Apply(idx, EncodeCommand(c)); res.Code != CodeOK {
			t.Fatalf("%+v: %d", c, res.Code)
		}
	}
	put := func(k string) { do(&Command{Kind: CmdTxn, Txn: Txn{Then: []Op{{Kind: OpPut, Key: k}}}}) }
	del := func(k string) { do(&Command{Kind: CmdTxn, Txn: Txn{Then: []Op{{Kind: OpDelete, Key: k}}}}) }
	put("a") // 2
	put("a") // 3
	put("b") // 4
	del("b") // 5: tombstone older than the compaction point
	put("c") // 6
	del("c") // 7
	put("c") // 8
	put("a") // 9
	put("d") // 10
	del("d") // 11
	do(&Command{Kind: CmdCompact, Revision: 10})

	type rk struct {
		key  string
		rev  int64
		live bool
	}
	var got []rk
	for _, r := range histRecs(m.View()) {
		got = append(got, rk{r.key, r.rev, r.kv != nil})
	}
	// a: 9 is the live version at 10, 3 and 2 go. b: the tombstone at 5 and
	// the put at 4 go. c: 8 stays; 7 and 6 go. d: the put at 10 stays (it is
	// at the compaction revision) and so does the later tombstone.
	want := []rk{{"a", 9, true}, {"c", 8, true}, {"d", 11, false}, {"d", 10, true}}
	if len(got) != len(want) {
		t.Fatalf("history %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("history %v, want %v", got, want)
		}
	}
	// The revision index keeps only revisions >= 10.
	keys := byRevKeys(m.View())
	if len(keys) != 2 || keys[0] != (revKey{10, "d"}) || keys[1] != (revKey{11, "d"}) {
		t.Fatalf("byRev %v", keys)
	}
	// Compacting past everything leaves just the live versions.
	put("e") // 12
	do(&Command{Kind: CmdCompact, Revision: 12})
	got = got[:0]
	for _, r := range histRecs(m.View()) {
		got = append(got, rk{r.key, r.rev, r.kv != nil})
	}
	if len(got) != 3 || got[0] != (rk{"a", 9, true}) || got[1] != (rk{"c", 8, true}) || got[2] != (rk{"e", 12, true}) {
		t.Fatalf("history after second compaction %v", got)
	}
	if keys := byRevKeys(m.View()); len(keys) != 1 || keys[0] != (revKey{12, "e"}) {
		t.Fatalf("byRev after second compaction %v", keys)
	}
}

// A recovered snapshot rebuilds exactly the indexes the live machine keeps.
func TestSnapshotRebuildsIndexes(t *testing.T) {
	m := New(nil)
	idx := uint64(0)
	do := func(c *Command) {
		t.Helper()
		idx++
		if res, _ := m.Apply(idx, EncodeCommand(c)); res.Code != CodeOK {
			t.Fatalf("%+v: %d", c, res.Code)
		}
	}
	put := func(k string, lease int64) {
		do(&Command{Kind: CmdTxn, Txn: Txn{Then: []Op{{Kind: OpPut, Key: k, Lease: lease}}}})
	}
	do(&Command{Kind: CmdGrant, LeaseID: 1, TTL: 10})
	do(&Command{Kind: CmdGrant, LeaseID: 2, TTL: 10})
	put("a", 1)                                                                  // 2
	put("b", 2)                                                                  // 3
	put("a", 0)                                                                  // 4
	put("c", 1)                                                                  // 5
	do(&Command{Kind: CmdTxn, Txn: Txn{Then: []Op{{Kind: OpDelete, Key: "b"}}}}) // 6
	put("d", 0)                                                                  // 7
	put("e", 2)                                                                  // 8
	do(&Command{Kind: CmdCompact, Revision: 7})
	put("a", 2) // 9

	var buf bytes.Buffer
	if err := m.View().WriteTo(&buf, nil); err != nil {
		t.Fatal(err)
	}
	st, err := decodeSnapshot(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	a, b := m.View().st, st
	fmtHist := func(v *View) string {
		out := ""
		for _, r := range histRecs(v) {
			out += fmt.Sprintf("%s@%d", r.key, r.rev)
			if r.kv != nil {
				out += fmt.Sprintf("%+v", *r.kv)
			}
			out += " "
		}
		return out
	}
	if ha, hb := fmtHist(m.View()), fmtHist(&View{st: *b}); ha != hb {
		t.Fatalf("hist\n%v\n%v", ha, hb)
	}
	if fmt.Sprint(byRevKeys(m.View())) != fmt.Sprint(byRevKeys(&View{st: *b})) {
		t.Fatalf("byRev\n%v\n%v", byRevKeys(m.View()), byRevKeys(&View{st: *b}))
	}
	var ca, cb, aa, ab []string
	a.cur.Ascend(func(l live) bool { ca = append(ca, fmt.Sprint(l.kv())); return true })
	b.cur.Ascend(func(l live) bool { cb = append(cb, fmt.Sprint(l.kv())); return true })
	a.attached.Ascend(func(x attach) bool { aa = append(aa, fmt.Sprint(x)); return true })
	b.attached.Ascend(func(x attach) bool { ab = append(ab, fmt.Sprint(x)); return true })
	if fmt.Sprint(ca) != fmt.Sprint(cb) || fmt.Sprint(aa) != fmt.Sprint(ab) || len(aa) != 3 {
		t.Fatalf("cur %v / %v, attached %v / %v", ca, cb, aa, ab)
	}
	// The live state's trees, and the ones a snapshot rebuilds, agree.
	for name, st := range map[string]*state{"live": m.st, "decoded": b} {
		if err := checkTrees(st); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if a.rev != b.rev || a.compactRev != b.compactRev || a.applied != b.applied {
		t.Fatal("counters differ")
	}
}

// checkTrees verifies that st's trees agree: every live version is a real
// version (not a tombstone's zero Version), every key attached to a lease is
// live with that lease, and the history holds past versions only (none of a
// live key at or after its live version).
func checkTrees(st *state) error {
	if n := st.recount(); n != st.bytes {
		return fmt.Errorf("bytes counted as the state changed: %d, counted afresh: %d", st.bytes, n)
	}
	var err error
	st.cur.Ascend(func(l live) bool {
		kv := l.kv()
		if kv.Version <= 0 || kv.ModRevision <= 0 {
			err = fmt.Errorf("key %q: live version %+v", kv.Key, kv)
		}
		return err == nil
	})
	st.attached.Ascend(func(a attach) bool {
		if kv, ok := st.get(a.key); err == nil && (!ok || kv.Lease != a.lease) {
			err = fmt.Errorf("key %q attached to lease %d, live version %v (live: %v)", a.key, a.lease, kv, ok)
		}
		return err == nil
	})
	st.hist.Ascend(func(r rec) bool {
		if kv, ok := st.get(r.Key); err == nil && ok && r.ModRevision >= kv.ModRevision {
			err = fmt.Errorf("key %q: history holds revision %d, live version %d", r.Key, r.ModRevision, kv.ModRevision)
		}
		return err == nil
	})
	return err
}

// Decoding into one reused Command, as the machine does for every entry,
// gives what a fresh decode gives: no op, compare or field of an earlier
// command shows through.
func TestDecodeIntoReusedCommand(t *testing.T) {
	cmds := []*Command{
		{Client: 7, Seq: 1, Kind: CmdTxn, Txn: Txn{
			Compares: []Compare{{Target: TargetValue, Result: CmpEqual, Key: "a", Value: []byte("x")}, {Target: TargetVersion, Key: "b", Int: 3}},
			Then: []Op{{Kind: OpPut, Key: "a", Value: []byte("1"), Lease: 5, PrevKV: true},
				{Kind: OpRange, Key: "b", End: "c", Range: RangeOpts{Limit: 2, KeysOnly: true, Sorted: true, SortTarget: SortMod, SortDesc: true}},
				{Kind: OpDelete, Key: "d", End: "e", PrevKV: true}},
			Else: []Op{{Kind: OpPut, Key: "z", Value: []byte("2")}}}},
		{Kind: CmdTxn, Txn: Txn{Then: []Op{{Kind: OpPut, Key: "k", Value: []byte{}}}}},
		{Kind: CmdCompact, Revision: 9},
		{Client: 8, Seq: 2, Kind: CmdTxn, Txn: Txn{Compares: []Compare{{Target: TargetMod, Result: CmpLess, Key: "m", Int: 4}},
			Then: []Op{{Kind: OpRange, Key: "p", Range: RangeOpts{CountOnly: true, Revision: 3, MinCreate: 1, MaxCreate: 2}},
				{Kind: OpPut, Key: "q", Value: []byte("v"), LeaseTTL: 10, Lease: 6}}}},
		{Kind: CmdExpire, Expire: []ExpireItem{{ID: 1, Renew: 2}}},
		{Kind: CmdMember, Member: MemberRecord{ID: 3, Name: "m3", Address: "127.0.0.1:3"}},
		{Kind: CmdTxn, Txn: Txn{Then: []Op{{Kind: OpDelete, Key: "x"}}}},
	}
	var reused Command
	for round := 0; round < 2; round++ {
		for i, c := range cmds {
			b := EncodeCommand(c)
			want, err := DecodeCommand(b)
			if err != nil {
				t.Fatalf("#%d: %v", i, err)
			}
			if err := decodeCommandInto(&reused, b); err != nil {
				t.Fatalf("#%d into a reused command: %v", i, err)
			}
			if !reflect.DeepEqual(&reused, want) {
				t.Fatalf("round %d, #%d: reused decode\n%+v\nfresh decode\n%+v", round, i, reused, *want)
			}
		}
	}
	// A malformed entry leaves nothing behind for the next one.
	if err := decodeCommandInto(&reused, EncodeCommand(cmds[0])[:10]); err == nil {
		t.Fatal("a truncated command decoded")
	}
	b := EncodeCommand(cmds[1])
	want, _ := DecodeCommand(b)
	if err := decodeCommandInto(&reused, b); err != nil || !reflect.DeepEqual(&reused, want) {
		t.Fatalf("after a malformed entry: %v\n%+v\n%+v", err, reused, *want)
	}
}
