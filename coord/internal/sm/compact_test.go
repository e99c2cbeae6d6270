package sm_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// putAt reports whether revision rev of the history scenario is a put.

func TestCompactionKeepsReadableHistory(t *testing.T) {
	for r := int64(1); r <= 8; r++ {
		t.Run(fmt.Sprint(r), func(t *testing.T) {
			h, want := historyScenario(t)
			pre := h.view()
			preEvents, _ := pre.Events(r+1, 8, "", "\x00", 1000)
			preAt, _ := pre.Events(r, r, "", "\x00", 1000)

			res, ev := h.apply(&sm.Command{Kind: sm.CmdCompact, Revision: r})
			if res.Code != sm.CodeOK || res.Revision != 8 || len(ev) != 0 {
				t.Fatalf("compact: %+v", res)
			}
			v := h.view()
			if v.CompactRevision() != r || v.Revision() != 8 {
				t.Fatalf("compact rev %d rev %d", v.CompactRevision(), v.Revision())
			}
			// Everything at or above r still reads as before.
			for rev := r; rev <= 8; rev++ {
				checkRangeAt(t, v, rev, want[rev])
			}
			checkRangeAt(t, v, 0, want[8])
			// Below r is gone.
			for rev := int64(1); rev < r; rev++ {
				if _, code := v.Range(rangeOp("a", "", sm.RangeOpts{Revision: rev})); code != sm.CodeCompacted {
					t.Fatalf("range at %d: code %d", rev, code)
				}
				if _, code := v.Range(rangeOp("", "\x00", sm.RangeOpts{Revision: rev})); code != sm.CodeCompacted {
					t.Fatalf("range all at %d: code %d", rev, code)
				}
			}
			// Events after r are unchanged, PrevKV included.
			post, last := v.Events(r+1, 8, "", "\x00", 1000)
			wantEvents(t, post, preEvents)
			if last != 8 {
				t.Fatalf("last %d", last)
			}
			// The event at r itself survives, a delete as well as a put;
			// only its PrevKV may be compacted away.
			if r > 1 {
				at, _ := v.Events(r, r, "", "\x00", 1000)
				if len(at) != 1 || len(preAt) != 1 || at[0].Delete != preAt[0].Delete || !kvEqual(at[0].KV, preAt[0].KV) ||
					(at[0].PrevKV != nil && !kvEqual(at[0].PrevKV, preAt[0].PrevKV)) {
					t.Fatalf("event at %d:\n%s\nwant\n%s", r, fmtEvents(at), fmtEvents(preAt))
				}
			}
			// Repeat and backwards compactions are refused; so is the future.
			hash := v.Hash()
			for _, rr := range []int64{r, r - 1, 0, -1} {
				if res := h.compact(rr); res.Code != sm.CodeCompacted || res.Revision != 8 {
					t.Fatalf("compact %d again: %+v", rr, res)
				}
			}
			for _, rr := range []int64{9, 100} {
				if res := h.compact(rr); res.Code != sm.CodeFutureRevision || res.Revision != 8 {
					t.Fatalf("compact %d: %+v", rr, res)
				}
			}
			if h.view().Hash() != hash || h.view().CompactRevision() != r {
				t.Fatal("refused compaction changed the state")
			}
			// Writes go on, versions continue from the surviving live version.
			op := putOp("b", "3")
			op.PrevKV = true
			res, ev = h.txn(op)
			if res.Revision != 9 || len(res.Ops[0].PrevKVs) != 1 || !kvEqual(res.Ops[0].PrevKVs[0], &want[8][0]) {
				t.Fatalf("put after compaction: %+v", res)
			}
			wantKV(t, get(t, h.view(), "b"), sm.KV{Key: "b", Value: []byte("3"), CreateRevision: 7, ModRevision: 9, Version: 2})
			hist, _ := h.view().Events(9, 9, "", "\x00", 10)
			wantEvents(t, hist, ev)
			// A second, later compaction.
			if res := h.compact(9); res.Code != sm.CodeOK || h.view().CompactRevision() != 9 {
				t.Fatalf("second compaction: %+v", res)
			}
			checkRangeAt(t, h.view(), 9, []sm.KV{
				{Key: "b", Value: []byte("3"), CreateRevision: 7, ModRevision: 9, Version: 2},
				want[8][1],
			})
			if _, code := h.view().Range(rangeOp("", "\x00", sm.RangeOpts{Revision: 8})); code != sm.CodeCompacted {
				t.Fatalf("range at 8 after compacting to 9: %d", code)
			}
		})
	}
}

func TestCompactionKeepsOldLiveVersions(t *testing.T) {
	h := newHarness(t)
	h.put("old", "1") // 2: never touched again
	for i := 0; i < 10; i++ {
		h.put("hot", fmt.Sprint(i)) // 3..12
	}
	h.put("gone", "x") // 13
	h.del("gone", "")  // 14
	h.put("new", "1")  // 15
	if res := h.compact(14); res.Code != sm.CodeOK {
		t.Fatal(res.Code)
	}
	v := h.view()
	for _, rev := range []int64{14, 15, 0} {
		kvs := rangeAll(t, v, rev)
		want := []string{"hot", "old"}
		if rev != 14 {
			want = []string{"hot", "new", "old"}
		}
		if !slices.Equal(keysOf(kvs), want) {
			t.Fatalf("at %d: %s", rev, fmtKVs(kvs))
		}
		wantKV(t, kvs[0], sm.KV{Key: "hot", Value: []byte("9"), CreateRevision: 3, ModRevision: 12, Version: 10})
		wantKV(t, kvs[len(kvs)-1], sm.KV{Key: "old", Value: []byte("1"), CreateRevision: 2, ModRevision: 2, Version: 1})
	}
	// Updating a key whose only version predates the compaction reports it
	// as the previous version.
	_, ev := h.txn(putOp("old", "2"))
	if len(ev) != 1 || ev[0].PrevKV == nil || ev[0].PrevKV.ModRevision != 2 {
		t.Fatalf("events %s", fmtEvents(ev))
	}
	hist, _ := h.view().Events(16, 16, "", "\x00", 10)
	wantEvents(t, hist, ev)
	// Compacting again drops the superseded version.
	h.compact(16)
	if kvs := rangeAll(t, h.view(), 16); len(kvs) != 3 || string(kvs[2].Value) != "2" || kvs[2].Version != 2 {
		t.Fatalf("%s", fmtKVs(kvs))
	}
}

func TestCompactFreshMachine(t *testing.T) {
	h := newHarness(t)
	if res := h.compact(0); res.Code != sm.CodeCompacted {
		t.Fatalf("compact 0: %+v", res)
	}
	if res := h.compact(2); res.Code != sm.CodeFutureRevision {
		t.Fatalf("compact 2: %+v", res)
	}
	if res := h.compact(1); res.Code != sm.CodeOK || h.view().CompactRevision() != 1 || h.view().Revision() != 1 {
		t.Fatalf("compact 1: %+v", res)
	}
	// Compacting to the current revision keeps everything live readable.
	h.put("a", "1")
	h.put("a", "2")
	h.put("b", "1")
	if res := h.compact(4); res.Code != sm.CodeOK {
		t.Fatal(res.Code)
	}
	if got := rangeAll(t, h.view(), 4); len(got) != 2 || string(got[0].Value) != "2" {
		t.Fatalf("%s", fmtKVs(got))
	}
	if _, code := h.view().Range(rangeOp("a", "", sm.RangeOpts{Revision: 3})); code != sm.CodeCompacted {
		t.Fatalf("code %d", code)
	}
}
