package sm_test

import (
	"fmt"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// compareBranch runs a read-only Txn with the compares and reports which
// branch ran, checking the revision did not move.
func compareBranch(t *testing.T, h *harness, cmps ...sm.Compare) bool {
	t.Helper()
	rev, hash := h.view().Revision(), h.view().Hash()
	res, ev := h.mustOK(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{
		Compares: cmps,
		Then:     []sm.Op{{Kind: sm.OpRange, Key: "then"}},
		Else:     []sm.Op{{Kind: sm.OpRange, Key: "else"}, {Kind: sm.OpRange, Key: "else"}},
	}})
	if res.Revision != rev || len(ev) != 0 || h.view().Hash() != hash {
		t.Fatalf("read-only txn changed state: %+v", res)
	}
	if res.Succeeded != (len(res.Ops) == 1) {
		t.Fatalf("Succeeded %v but %d ops ran", res.Succeeded, len(res.Ops))
	}
	return res.Succeeded
}

func TestTxnCompareTargets(t *testing.T) {
	h := newHarness(t)
	h.grant(5, 1000)
	h.put("other", "x")
	h.put("k", "a")
	h.put("other", "y")
	h.putLease("k", "m", 5)
	kv := get(t, h.view(), "k")
	if kv.Version != 2 || kv.CreateRevision != 3 || kv.ModRevision != 5 || kv.Lease != 5 {
		t.Fatalf("setup: %s", fmtKV(kv))
	}
	ints := map[uint8]int64{sm.TargetVersion: kv.Version, sm.TargetCreate: kv.CreateRevision, sm.TargetMod: kv.ModRevision, sm.TargetLease: kv.Lease}
	// For operand below, equal to, above the key's value: want for = != < >.
	// Compare semantics: "key's value <op> operand".
	want := map[uint8][3]bool{
		sm.CmpEqual:    {false, true, false},
		sm.CmpNotEqual: {true, false, true},
		sm.CmpLess:     {false, false, true},
		sm.CmpGreater:  {true, false, false},
	}
	for target := sm.TargetValue; target <= sm.TargetLease; target++ {
		for result, w := range want {
			for i, delta := range []int64{-1, 0, 1} {
				c := sm.Compare{Target: target, Result: result, Key: "k"}
				if target == sm.TargetValue {
					c.Value = [][]byte{[]byte("l\xff"), []byte("m"), []byte("m\x00")}[i]
				} else {
					c.Int = ints[target] + delta
				}
				if got := compareBranch(t, h, c); got != w[i] {
					t.Errorf("target %d result %d operand %d (%q): %v, want %v", target, result, c.Int, c.Value, got, w[i])
				}
			}
		}
	}
	// Empty and longer values.
	if !compareBranch(t, h, sm.Compare{Target: sm.TargetValue, Result: sm.CmpGreater, Key: "k", Value: nil}) {
		t.Fatal(`"m" > "" is false`)
	}
	if !compareBranch(t, h, sm.Compare{Target: sm.TargetValue, Result: sm.CmpLess, Key: "k", Value: []byte("mm")}) {
		t.Fatal(`"m" < "mm" is false`)
	}
}

func TestTxnCompareMissingKey(t *testing.T) {
	h := newHarness(t)
	h.put("k", "v")
	h.del("k", "") // a deleted key is missing too
	for _, key := range []string{"never", "k"} {
		// A value compare on a missing key is false, whatever the result.
		for _, result := range []uint8{sm.CmpEqual, sm.CmpNotEqual, sm.CmpLess, sm.CmpGreater} {
			for _, val := range [][]byte{nil, []byte(""), []byte("v")} {
				if compareBranch(t, h, sm.Compare{Target: sm.TargetValue, Result: result, Key: key, Value: val}) {
					t.Errorf("%q: value compare %d %q on a missing key is true", key, result, val)
				}
			}
		}
		// Version, create, mod and lease of a missing key are 0.
		for _, target := range []uint8{sm.TargetVersion, sm.TargetCreate, sm.TargetMod, sm.TargetLease} {
			for _, tc := range []struct {
				result uint8
				n      int64
				want   bool
			}{
				{sm.CmpEqual, 0, true}, {sm.CmpEqual, 1, false},
				{sm.CmpNotEqual, 0, false}, {sm.CmpNotEqual, 2, true},
				{sm.CmpLess, 1, true}, {sm.CmpLess, 0, false},
				{sm.CmpGreater, -1, true}, {sm.CmpGreater, 0, false},
			} {
				c := sm.Compare{Target: target, Result: tc.result, Key: key, Int: tc.n}
				if got := compareBranch(t, h, c); got != tc.want {
					t.Errorf("%q: target %d result %d int %d: %v, want %v", key, target, tc.result, tc.n, got, tc.want)
				}
			}
		}
	}
}

func TestTxnCompareConjunction(t *testing.T) {
	h := newHarness(t)
	h.put("a", "1")
	h.put("b", "2")
	yes := func(k, v string) sm.Compare {
		return sm.Compare{Target: sm.TargetValue, Result: sm.CmpEqual, Key: k, Value: []byte(v)}
	}
	for _, tc := range []struct {
		cmps []sm.Compare
		want bool
	}{
		{nil, true},
		{[]sm.Compare{yes("a", "1")}, true},
		{[]sm.Compare{yes("a", "1"), yes("b", "2")}, true},
		{[]sm.Compare{yes("a", "1"), yes("b", "1")}, false},
		{[]sm.Compare{yes("a", "2"), yes("b", "2")}, false},
		{[]sm.Compare{yes("a", "1"), yes("b", "2"), {Target: sm.TargetVersion, Result: sm.CmpGreater, Key: "a", Int: 1}}, false},
	} {
		if got := compareBranch(t, h, tc.cmps...); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.cmps, got, tc.want)
		}
	}
}

func TestTxnBranches(t *testing.T) {
	for _, cond := range []bool{true, false} {
		t.Run(fmt.Sprint(cond), func(t *testing.T) {
			h := newHarness(t)
			h.put("k", "v") // 2
			h.put("gone", "x")
			cmp := sm.Compare{Target: sm.TargetVersion, Result: sm.CmpEqual, Key: "k", Int: 1}
			if !cond {
				cmp.Int = 2
			}
			res, ev := h.mustOK(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{
				Compares: []sm.Compare{cmp},
				Then:     []sm.Op{putOp("t1", "a"), putOp("t2", "b"), {Kind: sm.OpDelete, Key: "gone", PrevKV: true}, {Kind: sm.OpRange, Key: "", End: "\x00"}},
				Else:     []sm.Op{putOp("e1", "c"), {Kind: sm.OpRange, Key: "k"}},
			}})
			if res.Succeeded != cond || res.Revision != 4 || h.view().Revision() != 4 {
				t.Fatalf("res %+v", res)
			}
			kvs := rangeAll(t, h.view(), 0)
			if cond {
				if got := fmt.Sprint(keysOf(kvs)); got != "[k t1 t2]" {
					t.Fatalf("keys after Then: %s", got)
				}
				if len(res.Ops) != 4 || res.Ops[0].Kind != sm.OpPut || res.Ops[2].Deleted != 1 || res.Ops[3].Kind != sm.OpRange {
					t.Fatalf("ops %+v", res.Ops)
				}
				// All writes share one revision.
				for _, kv := range kvs[1:] {
					if kv.ModRevision != 4 || kv.CreateRevision != 4 {
						t.Fatalf("%s not at revision 4", fmtKV(kv))
					}
				}
				if len(ev) != 3 {
					t.Fatalf("events %s", fmtEvents(ev))
				}
				for _, e := range ev {
					if e.KV.ModRevision != 4 {
						t.Fatalf("event %s", fmtEvent(e))
					}
				}
				// The range sees the Txn's own earlier writes.
				if got := fmt.Sprint(keysOf(res.Ops[3].KVs)); got != "[k t1 t2]" {
					t.Fatalf("range inside txn: %s", got)
				}
				hist, _ := h.view().Events(4, 4, "", "\x00", 100)
				if len(hist) != 3 {
					t.Fatalf("history at 4: %s", fmtEvents(hist))
				}
			} else {
				if got := fmt.Sprint(keysOf(kvs)); got != "[e1 gone k]" {
					t.Fatalf("keys after Else: %s", got)
				}
				if len(res.Ops) != 2 || res.Ops[1].Count != 1 || string(res.Ops[1].KVs[0].Value) != "v" || len(ev) != 1 {
					t.Fatalf("ops %+v events %v", res.Ops, ev)
				}
			}
		})
	}
}

// A Txn branch that fails validation changes nothing at all.
func TestTxnBranchIsAtomic(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cond  bool // whether the compare holds
		then  []sm.Op
		els   []sm.Op
		want  sm.Code
		dirty bool // the command is expected to succeed and write
	}{
		{"unknown lease in then", true,
			[]sm.Op{putOp("a", "new"), {Kind: sm.OpPut, Key: "b", Value: []byte("x"), Lease: 99}, {Kind: sm.OpDelete, Key: "c"}}, nil,
			sm.CodeLeaseNotFound, false},
		{"unknown lease last", true,
			[]sm.Op{{Kind: sm.OpDelete, Key: "b", End: "y"}, putOp("a", "new"), {Kind: sm.OpPut, Key: "z", Lease: 99}}, nil,
			sm.CodeLeaseNotFound, false},
		{"unknown lease in else", false,
			nil, []sm.Op{putOp("a", "new"), {Kind: sm.OpPut, Key: "b", Lease: 99}},
			sm.CodeLeaseNotFound, false},
		{"unknown lease in the branch not taken", true,
			[]sm.Op{putOp("a", "new")}, []sm.Op{{Kind: sm.OpPut, Key: "b", Lease: 99}},
			sm.CodeOK, true},
		{"future range revision", true,
			[]sm.Op{putOp("a", "new"), {Kind: sm.OpRange, Key: "a", Range: sm.RangeOpts{Revision: 100}}}, nil,
			sm.CodeFutureRevision, false},
		{"compacted range revision", true,
			[]sm.Op{putOp("a", "new"), {Kind: sm.OpRange, Key: "a", Range: sm.RangeOpts{Revision: 2}}}, nil,
			sm.CodeCompacted, false},
		{"duplicate put in then", true,
			[]sm.Op{putOp("a", "1"), putOp("b", "x"), putOp("a", "2")}, nil,
			sm.CodeDuplicateKey, false},
		{"duplicate put in else, then taken", true,
			[]sm.Op{putOp("a", "1")}, []sm.Op{putOp("b", "1"), putOp("b", "2")},
			sm.CodeDuplicateKey, false},
		{"same key in then and else", true,
			[]sm.Op{putOp("a", "1")}, []sm.Op{putOp("a", "2")},
			sm.CodeOK, true},
		{"two deletes of one key", true,
			[]sm.Op{{Kind: sm.OpDelete, Key: "c"}, {Kind: sm.OpDelete, Key: "c"}}, nil,
			sm.CodeOK, true},
		{"put and range of one key", true,
			[]sm.Op{putOp("a", "1"), {Kind: sm.OpRange, Key: "a"}}, nil,
			sm.CodeOK, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.grant(7, 1000)
			h.put("a", "old") // 2
			h.put("c", "old") // 3
			h.putLease("d", "old", 7)
			h.put("e", "old") // 5
			if r := h.compact(3); r.Code != sm.CodeOK {
				t.Fatal(r.Code)
			}
			hash, rev := h.view().Hash(), h.view().Revision()
			leases := fmt.Sprint(h.view().Leases())
			cmp := sm.Compare{Target: sm.TargetValue, Result: sm.CmpEqual, Key: "a", Value: []byte("old")}
			if !tc.cond {
				cmp.Value = []byte("no")
			}
			res, ev := h.apply(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Compares: []sm.Compare{cmp}, Then: tc.then, Else: tc.els}})
			if res.Code != tc.want {
				t.Fatalf("code %d, want %d", res.Code, tc.want)
			}
			if tc.dirty {
				if res.Revision != rev+1 || h.view().Revision() != rev+1 {
					t.Fatalf("revision %d, want %d", res.Revision, rev+1)
				}
				return
			}
			if res.Revision != rev || h.view().Revision() != rev || len(ev) != 0 || len(res.Ops) != 0 {
				t.Fatalf("failed txn: %+v events %v", res, ev)
			}
			if h.view().Hash() != hash || fmt.Sprint(h.view().Leases()) != leases {
				t.Fatal("failed txn changed the state")
			}
			if kv := get(t, h.view(), "a"); string(kv.Value) != "old" || kv.Version != 1 {
				t.Fatalf("a = %s", fmtKV(kv))
			}
			if get(t, h.view(), "c") == nil || get(t, h.view(), "b") != nil {
				t.Fatal("failed txn applied an op")
			}
			if _, ok := h.view().Lease(99); ok {
				t.Fatal("failed txn created a lease")
			}
		})
	}
}

func TestTxnReadOnlyDoesNotBumpRevision(t *testing.T) {
	h, _ := historyScenario(t)
	rev, hash := h.view().Revision(), h.view().Hash()
	for i, txn := range []sm.Txn{
		{},
		{Then: []sm.Op{{Kind: sm.OpRange, Key: "a", End: "\x00"}}},
		{Then: []sm.Op{{Kind: sm.OpRange, Key: "", End: "\x00", Range: sm.RangeOpts{Revision: 3}}}},
		{Compares: []sm.Compare{{Target: sm.TargetVersion, Key: "zz", Int: 5}}, Then: []sm.Op{putOp("x", "1")}},
		{Then: []sm.Op{{Kind: sm.OpDelete, Key: "zz", End: "zzz"}, {Kind: sm.OpRange, Key: "b"}}},
	} {
		res, ev := h.mustOK(&sm.Command{Kind: sm.CmdTxn, Txn: txn})
		if res.Revision != rev || len(ev) != 0 || h.view().Revision() != rev || h.view().Hash() != hash {
			t.Fatalf("#%d: revision %d events %d", i, res.Revision, len(ev))
		}
	}
	// The old-revision range inside a Txn reads history.
	res, _ := h.mustOK(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpRange, Key: "", End: "\x00", Range: sm.RangeOpts{Revision: 4}}}}})
	if got := fmt.Sprint(keysOf(res.Ops[0].KVs)); got != "[a b]" || string(res.Ops[0].KVs[0].Value) != "2" {
		t.Fatalf("range at 4 in txn: %s", fmtKVs(res.Ops[0].KVs))
	}
}
