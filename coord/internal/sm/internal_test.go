package sm

import "testing"

// White-box checks of what compaction removes from the history.

func histRecs(v *View) []rec {
	var out []rec
	v.st.hist.Ascend(func(r rec) bool { out = append(out, r); return true })
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
