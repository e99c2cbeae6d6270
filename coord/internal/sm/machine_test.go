package sm_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

func TestFreshMachine(t *testing.T) {
	m := sm.New(nil)
	v := m.View()
	if v.Revision() != 1 || v.CompactRevision() != 0 || v.Applied() != 0 {
		t.Fatalf("fresh: rev %d compact %d applied %d", v.Revision(), v.CompactRevision(), v.Applied())
	}
	if kvs := rangeAll(t, v, 0); len(kvs) != 0 {
		t.Fatalf("fresh store has keys %s", fmtKVs(kvs))
	}
	if l := v.Leases(); len(l) != 0 {
		t.Fatalf("fresh store has leases %v", l)
	}
	if sm.New(nil).View().Hash() != v.Hash() {
		t.Fatal("two fresh machines hash differently")
	}
}

func TestPutDeleteRevisionsAndVersions(t *testing.T) {
	h := newHarness(t)
	h0 := h.view().Hash()

	res, ev := h.txn(putOp("a", "1"))
	if res.Code != sm.CodeOK || res.Revision != 2 || !res.Succeeded || len(res.Ops) != 1 || res.Ops[0].Kind != sm.OpPut || len(res.Ops[0].PrevKVs) != 0 {
		t.Fatalf("first put: %+v", res)
	}
	wantEvents(t, ev, []sm.Event{{KV: &sm.KV{Key: "a", Value: []byte("1"), CreateRevision: 2, ModRevision: 2, Version: 1}}})
	wantKV(t, get(t, h.view(), "a"), sm.KV{Key: "a", Value: []byte("1"), CreateRevision: 2, ModRevision: 2, Version: 1})
	if h.view().Hash() == h0 {
		t.Fatal("hash unchanged by a put")
	}

	// Second put: same create revision, version 2; PrevKV returned on request.
	op := putOp("a", "2")
	op.PrevKV = true
	res, ev = h.txn(op)
	if res.Revision != 3 || len(res.Ops[0].PrevKVs) != 1 {
		t.Fatalf("second put: %+v", res)
	}
	v1 := sm.KV{Key: "a", Value: []byte("1"), CreateRevision: 2, ModRevision: 2, Version: 1}
	v2 := sm.KV{Key: "a", Value: []byte("2"), CreateRevision: 2, ModRevision: 3, Version: 2}
	wantKV(t, res.Ops[0].PrevKVs[0], v1)
	wantEvents(t, ev, []sm.Event{{KV: &v2, PrevKV: &v1}})
	wantKV(t, get(t, h.view(), "a"), v2)

	// Same value again still bumps revision and version.
	if rev := h.put("a", "2"); rev != 4 {
		t.Fatalf("rev %d", rev)
	}
	v3 := sm.KV{Key: "a", Value: []byte("2"), CreateRevision: 2, ModRevision: 4, Version: 3}
	wantKV(t, get(t, h.view(), "a"), v3)

	// Delete with PrevKV.
	res, ev = h.txn(sm.Op{Kind: sm.OpDelete, Key: "a", PrevKV: true})
	if res.Revision != 5 || res.Ops[0].Kind != sm.OpDelete || res.Ops[0].Deleted != 1 || len(res.Ops[0].PrevKVs) != 1 {
		t.Fatalf("delete: %+v", res)
	}
	wantKV(t, res.Ops[0].PrevKVs[0], v3)
	wantEvents(t, ev, []sm.Event{{Delete: true, KV: &sm.KV{Key: "a", ModRevision: 5}, PrevKV: &v3}})
	if kv := get(t, h.view(), "a"); kv != nil {
		t.Fatalf("deleted key still there: %s", fmtKV(kv))
	}

	// Delete without PrevKV reports the count only.
	h.put("x", "1") // rev 6
	res, _ = h.txn(sm.Op{Kind: sm.OpDelete, Key: "x"})
	if res.Revision != 7 || res.Ops[0].Deleted != 1 || len(res.Ops[0].PrevKVs) != 0 {
		t.Fatalf("delete without prevkv: %+v", res)
	}

	// Re-creating resets version and create revision.
	res, ev = h.txn(op) // put a=2 with PrevKV
	if res.Revision != 8 || len(res.Ops[0].PrevKVs) != 0 {
		t.Fatalf("recreate: %+v", res)
	}
	v4 := sm.KV{Key: "a", Value: []byte("2"), CreateRevision: 8, ModRevision: 8, Version: 1}
	wantEvents(t, ev, []sm.Event{{KV: &v4}})
	wantKV(t, get(t, h.view(), "a"), v4)

	// Deleting a missing key changes nothing and does not bump the revision.
	hash := h.view().Hash()
	res, ev = h.txn(sm.Op{Kind: sm.OpDelete, Key: "missing", PrevKV: true})
	if res.Code != sm.CodeOK || res.Revision != 8 || res.Ops[0].Deleted != 0 || len(ev) != 0 {
		t.Fatalf("delete missing: %+v %v", res, ev)
	}
	if h.view().Revision() != 8 || h.view().Hash() != hash {
		t.Fatal("delete of a missing key changed the state")
	}
	// Empty value and binary keys are fine.
	h.txn(sm.Op{Kind: sm.OpPut, Key: "\x00\xff"})
	wantKV(t, get(t, h.view(), "\x00\xff"), sm.KV{Key: "\x00\xff", CreateRevision: 9, ModRevision: 9, Version: 1})
	if h.view().Applied() != h.idx {
		t.Fatalf("applied %d, want %d", h.view().Applied(), h.idx)
	}
}

func TestDeleteRange(t *testing.T) {
	for _, tc := range []struct {
		key, end string
		want     []string // deleted, in key order
	}{
		{"b", "", []string{"b"}},
		{"b/", "b0", []string{"b/1", "b/2"}},
		{"b", "c", []string{"b", "b/1", "b/2", "b0"}},
		{"b0", "\x00", []string{"b0", "c"}},
		{"", "\x00", []string{"a", "b", "b/1", "b/2", "b0", "c"}},
		{"c", "b", nil},
		{"zz", "", nil},
	} {
		t.Run(fmt.Sprintf("%q-%q", tc.key, tc.end), func(t *testing.T) {
			h := newHarness(t)
			for _, k := range []string{"a", "b", "b/1", "b/2", "b0", "c"} {
				h.put(k, "v"+k)
			}
			before := rangeAll(t, h.view(), 0)
			res, ev := h.txn(sm.Op{Kind: sm.OpDelete, Key: tc.key, End: tc.end, PrevKV: true})
			if res.Code != sm.CodeOK || res.Ops[0].Deleted != int64(len(tc.want)) {
				t.Fatalf("res %+v", res)
			}
			if got := keysOf(res.Ops[0].PrevKVs); !slices.Equal(got, tc.want) && len(tc.want)+len(got) > 0 {
				t.Fatalf("deleted %v, want %v", got, tc.want)
			}
			wantRev := int64(7)
			if len(tc.want) > 0 {
				wantRev = 8
			}
			if res.Revision != wantRev || h.view().Revision() != wantRev {
				t.Fatalf("revision %d, want %d", res.Revision, wantRev)
			}
			if len(ev) != len(tc.want) {
				t.Fatalf("%d events, want %d", len(ev), len(tc.want))
			}
			for i, e := range ev {
				if !e.Delete || e.KV.Key != tc.want[i] || e.KV.ModRevision != wantRev || e.PrevKV == nil || e.PrevKV.Key != tc.want[i] ||
					string(e.PrevKV.Value) != "v"+tc.want[i] {
					t.Fatalf("event %d: %s", i, fmtEvent(e))
				}
			}
			var left []string
			for _, kv := range before {
				if !slices.Contains(tc.want, kv.Key) {
					left = append(left, kv.Key)
				}
			}
			if got := keysOf(rangeAll(t, h.view(), 0)); !slices.Equal(got, left) {
				t.Fatalf("left %v, want %v", got, left)
			}
		})
	}
}

func TestRangeKeysAndEnds(t *testing.T) {
	h := newHarness(t)
	for _, k := range []string{"a", "b", "b/1", "b/2", "b0", "c"} {
		h.put(k, "v"+k)
	}
	for _, tc := range []struct {
		key, end string
		want     []string
	}{
		{"b", "", []string{"b"}},
		{"x", "", nil},
		{"b/", "b0", []string{"b/1", "b/2"}}, // prefix: end = prefix end
		{"b", "c", []string{"b", "b/1", "b/2", "b0"}},
		{"b", "\x00", []string{"b", "b/1", "b/2", "b0", "c"}}, // no upper bound
		{"", "\x00", []string{"a", "b", "b/1", "b/2", "b0", "c"}},
		{"zz", "\x00", nil},
		{"c", "b", nil},
		{"a", "a", nil},
		{"b/1", "b/2", []string{"b/1"}},
	} {
		r, code := h.view().Range(rangeOp(tc.key, tc.end, sm.RangeOpts{}))
		if code != sm.CodeOK {
			t.Fatalf("%q-%q: code %d", tc.key, tc.end, code)
		}
		if got := keysOf(r.KVs); !slices.Equal(got, tc.want) {
			t.Fatalf("%q-%q: %v, want %v", tc.key, tc.end, got, tc.want)
		}
		if r.Count != int64(len(tc.want)) || r.More || r.Kind != sm.OpRange {
			t.Fatalf("%q-%q: count %d more %v kind %d", tc.key, tc.end, r.Count, r.More, r.Kind)
		}
		for _, kv := range r.KVs {
			if string(kv.Value) != "v"+kv.Key {
				t.Fatalf("value of %q: %q", kv.Key, kv.Value)
			}
		}
	}
}

func TestRangeLimitCountKeysOnly(t *testing.T) {
	h := newHarness(t)
	all := []string{"k1", "k2", "k3", "k4", "k5", "k6"}
	for _, k := range all {
		h.put(k, "v"+k)
	}
	for _, tc := range []struct {
		opts     sm.RangeOpts
		want     []string
		count    int64
		more     bool
		keysOnly bool
	}{
		{sm.RangeOpts{}, all, 6, false, false},
		{sm.RangeOpts{Limit: 2}, all[:2], 6, true, false},
		{sm.RangeOpts{Limit: 5}, all[:5], 6, true, false},
		{sm.RangeOpts{Limit: 6}, all, 6, false, false},
		{sm.RangeOpts{Limit: 7}, all, 6, false, false},
		{sm.RangeOpts{Limit: -1}, all, 6, false, false},
		{sm.RangeOpts{CountOnly: true}, nil, 6, false, false},
		{sm.RangeOpts{CountOnly: true, Limit: 2}, nil, 6, false, false},
		{sm.RangeOpts{KeysOnly: true}, all, 6, false, true},
		{sm.RangeOpts{KeysOnly: true, Limit: 3}, all[:3], 6, true, true},
		{sm.RangeOpts{Sorted: true, SortDesc: true, Limit: 2}, []string{"k6", "k5"}, 6, true, false},
		{sm.RangeOpts{Sorted: true, SortDesc: true, Limit: 6}, []string{"k6", "k5", "k4", "k3", "k2", "k1"}, 6, false, false},
		{sm.RangeOpts{Sorted: true, CountOnly: true}, nil, 6, false, false},
	} {
		r, code := h.view().Range(rangeOp("", "\x00", tc.opts))
		if code != sm.CodeOK {
			t.Fatalf("%+v: code %d", tc.opts, code)
		}
		if got := keysOf(r.KVs); !slices.Equal(got, tc.want) {
			t.Fatalf("%+v: keys %v, want %v", tc.opts, got, tc.want)
		}
		if r.Count != tc.count || r.More != tc.more {
			t.Fatalf("%+v: count %d more %v, want %d %v", tc.opts, r.Count, r.More, tc.count, tc.more)
		}
		for _, kv := range r.KVs {
			if tc.keysOnly != (kv.Value == nil) {
				t.Fatalf("%+v: value %q", tc.opts, kv.Value)
			}
			if kv.Version != 1 || kv.CreateRevision == 0 || kv.ModRevision != kv.CreateRevision {
				t.Fatalf("%+v: metadata lost: %s", tc.opts, fmtKV(kv))
			}
		}
	}
	// KeysOnly must not have stripped the stored values.
	for _, kv := range rangeAll(t, h.view(), 0) {
		if string(kv.Value) != "v"+kv.Key {
			t.Fatalf("KeysOnly mutated the store: %s", fmtKV(kv))
		}
	}
}

func TestRangeSort(t *testing.T) {
	h := newHarness(t)
	h.put("k3", "a") // 2
	h.put("k1", "x") // 3
	h.put("k4", "c") // 4
	h.put("k2", "b") // 5
	h.put("k1", "d") // 6
	h.put("k1", "d") // 7
	h.put("k4", "c") // 8
	// k1: d c3 m7 v3; k2: b c5 m5 v1; k3: a c2 m2 v1; k4: c c4 m8 v2
	for _, tc := range []struct {
		target uint8
		asc    []string
	}{
		{sm.SortKey, []string{"k1", "k2", "k3", "k4"}},
		{sm.SortVersion, []string{"k2", "k3", "k4", "k1"}}, // ties by key
		{sm.SortCreate, []string{"k3", "k1", "k4", "k2"}},
		{sm.SortMod, []string{"k3", "k2", "k1", "k4"}},
		{sm.SortValue, []string{"k3", "k2", "k4", "k1"}},
	} {
		for _, desc := range []bool{false, true} {
			want := slices.Clone(tc.asc)
			if desc {
				slices.Reverse(want)
			}
			r, code := h.view().Range(rangeOp("k", "l", sm.RangeOpts{Sorted: true, SortTarget: tc.target, SortDesc: desc}))
			if code != sm.CodeOK {
				t.Fatal(code)
			}
			if got := keysOf(r.KVs); !slices.Equal(got, want) {
				t.Fatalf("target %d desc %v: %v, want %v", tc.target, desc, got, want)
			}
			// Limit applies after sorting.
			r, _ = h.view().Range(rangeOp("k", "l", sm.RangeOpts{Sorted: true, SortTarget: tc.target, SortDesc: desc, Limit: 2}))
			if got := keysOf(r.KVs); !slices.Equal(got, want[:2]) || !r.More || r.Count != 4 {
				t.Fatalf("target %d desc %v limit 2: %v more %v count %d", tc.target, desc, got, r.More, r.Count)
			}
			// Unsorted ignores the sort fields: key order ascending.
			r, _ = h.view().Range(rangeOp("k", "l", sm.RangeOpts{SortTarget: tc.target, SortDesc: desc}))
			if got := keysOf(r.KVs); !slices.Equal(got, []string{"k1", "k2", "k3", "k4"}) {
				t.Fatalf("unsorted target %d desc %v: %v", tc.target, desc, got)
			}
		}
	}
}

// historyScenario builds a store with overwrites, deletes and a re-create
// and returns the expected full range at every revision 1..8.
func historyScenario(t testing.TB) (*harness, map[int64][]sm.KV) {
	h := newHarness(t)
	h.put("a", "1") // 2
	h.put("b", "1") // 3
	h.put("a", "2") // 4
	h.del("b", "")  // 5
	h.put("c", "1") // 6
	h.put("b", "2") // 7
	h.del("a", "")  // 8
	a1 := sm.KV{Key: "a", Value: []byte("1"), CreateRevision: 2, ModRevision: 2, Version: 1}
	a2 := sm.KV{Key: "a", Value: []byte("2"), CreateRevision: 2, ModRevision: 4, Version: 2}
	b1 := sm.KV{Key: "b", Value: []byte("1"), CreateRevision: 3, ModRevision: 3, Version: 1}
	b2 := sm.KV{Key: "b", Value: []byte("2"), CreateRevision: 7, ModRevision: 7, Version: 1}
	c1 := sm.KV{Key: "c", Value: []byte("1"), CreateRevision: 6, ModRevision: 6, Version: 1}
	return h, map[int64][]sm.KV{
		1: nil,
		2: {a1},
		3: {a1, b1},
		4: {a2, b1},
		5: {a2},
		6: {a2, c1},
		7: {a2, b2, c1},
		8: {b2, c1},
	}
}

func checkRangeAt(t testing.TB, v *sm.View, rev int64, want []sm.KV) {
	t.Helper()
	got := rangeAll(t, v, rev)
	if len(got) != len(want) {
		t.Fatalf("at %d: %s, want %d kvs", rev, fmtKVs(got), len(want))
	}
	for i := range want {
		if !kvEqual(got[i], &want[i]) {
			t.Fatalf("at %d: %s, want %s", rev, fmtKVs(got), fmtKV(&want[i]))
		}
		// Single-key range at rev agrees.
		r, code := v.Range(rangeOp(want[i].Key, "", sm.RangeOpts{Revision: rev}))
		if code != sm.CodeOK || len(r.KVs) != 1 || !kvEqual(r.KVs[0], &want[i]) {
			t.Fatalf("at %d key %q: %s code %d", rev, want[i].Key, fmtKVs(r.KVs), code)
		}
	}
	// Keys absent at rev are absent in a single-key read too.
	for _, k := range []string{"a", "b", "c"} {
		if slices.ContainsFunc(want, func(kv sm.KV) bool { return kv.Key == k }) {
			continue
		}
		r, code := v.Range(rangeOp(k, "", sm.RangeOpts{Revision: rev}))
		if code != sm.CodeOK || len(r.KVs) != 0 || r.Count != 0 {
			t.Fatalf("at %d key %q should be absent: %s", rev, k, fmtKVs(r.KVs))
		}
	}
}

func TestRangeAtRevision(t *testing.T) {
	h, want := historyScenario(t)
	v := h.view()
	for rev := int64(1); rev <= 8; rev++ {
		checkRangeAt(t, v, rev, want[rev])
	}
	// 0 and negative mean latest.
	checkRangeAt(t, v, 0, want[8])
	checkRangeAt(t, v, -3, want[8])
	// Limit, count and keys-only at an older revision.
	r, code := v.Range(rangeOp("", "\x00", sm.RangeOpts{Revision: 7, Limit: 2, KeysOnly: true}))
	if code != sm.CodeOK || !slices.Equal(keysOf(r.KVs), []string{"a", "b"}) || r.Count != 3 || !r.More || r.KVs[0].Value != nil {
		t.Fatalf("limited old range: %s count %d more %v", fmtKVs(r.KVs), r.Count, r.More)
	}
	r, _ = v.Range(rangeOp("", "\x00", sm.RangeOpts{Revision: 7, Sorted: true, SortTarget: sm.SortMod, SortDesc: true}))
	if !slices.Equal(keysOf(r.KVs), []string{"b", "c", "a"}) {
		t.Fatalf("sorted old range: %s", fmtKVs(r.KVs))
	}
	r, _ = v.Range(rangeOp("b", "c", sm.RangeOpts{Revision: 4, CountOnly: true}))
	if r.Count != 1 || r.KVs != nil {
		t.Fatalf("count-only old range: %+v", r)
	}
	// Future revisions are refused.
	for _, rev := range []int64{9, 100} {
		if _, code := v.Range(rangeOp("a", "", sm.RangeOpts{Revision: rev})); code != sm.CodeFutureRevision {
			t.Fatalf("rev %d: code %d", rev, code)
		}
	}
	// Range at a revision in a range with many keys and deep history: every
	// key has a version at every revision from its creation.
	h2 := newHarness(t)
	for i := 0; i < 30; i++ {
		for _, k := range []string{"p/1", "p/2", "p/3", "q"} {
			h2.put(k, fmt.Sprint(i))
		}
	}
	for rev := int64(2); rev <= h2.view().Revision(); rev++ {
		r, _ := h2.view().Range(rangeOp("p/", "p0", sm.RangeOpts{Revision: rev}))
		for _, kv := range r.KVs {
			if kv.ModRevision > rev || kv.Key == "q" {
				t.Fatalf("at %d: %s", rev, fmtKV(kv))
			}
		}
		wantN := min(3, int(rev-1))
		if len(r.KVs) != wantN {
			t.Fatalf("at %d: %d kvs, want %d", rev, len(r.KVs), wantN)
		}
	}
}

// The view returned by View() is a frozen snapshot: later applies do not show.
func TestViewIsImmutable(t *testing.T) {
	h, want := historyScenario(t)
	old := h.view()
	hash := old.Hash()
	h.grant(9, 1000)
	h.putLease("d", "1", 9)
	h.put("b", "3")
	h.compact(9)
	if old.Revision() != 8 || old.CompactRevision() != 0 || old.Hash() != hash || len(old.Leases()) != 0 || len(old.LeaseKeys(9)) != 0 {
		t.Fatal("old view changed")
	}
	checkRangeAt(t, old, 0, want[8])
	checkRangeAt(t, old, 3, want[3])
	if h.view().Revision() != 10 || h.view().Hash() == hash {
		t.Fatal("new view not published")
	}
}

func TestBadCommandChangesNothing(t *testing.T) {
	h, _ := historyScenario(t)
	hash, rev := h.view().Hash(), h.view().Revision()
	for i, b := range [][]byte{nil, {}, {2, 1}, {1, 99}, {1, sm.CmdTxn, 0, 0, 0, 0}, {1, sm.CmdGrant}} {
		h.idx += 2
		res, ev := h.m.Apply(h.idx, b)
		if res.Code != sm.CodeBadCommand || res.Revision != rev || len(ev) != 0 {
			t.Fatalf("#%d: %+v %v", i, res, ev)
		}
		if h.view().Hash() != hash || h.view().Revision() != rev {
			t.Fatalf("#%d: state changed", i)
		}
		if h.view().Applied() != h.idx {
			t.Fatalf("#%d: applied %d, want %d", i, h.view().Applied(), h.idx)
		}
	}
}
