package sm_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// eventsScenario extends historyScenario with a multi-key revision, a
// re-create and a range delete, and returns every event in order.
func eventsScenario(t *testing.T) (*harness, []sm.Event) {
	h, _ := historyScenario(t)
	h.txn(putOp("x/1", "1"), putOp("x/2", "2"), putOp("x/3", "3")) // 9
	h.put("a", "3")                                                // 10
	h.del("x/", "x0")                                              // 11
	kv := func(k, v string, c, m, ver int64) *sm.KV {
		return &sm.KV{Key: k, Value: []byte(v), CreateRevision: c, ModRevision: m, Version: ver}
	}
	del := func(k string, rev int64, prev *sm.KV) sm.Event {
		return sm.Event{Delete: true, KV: &sm.KV{Key: k, ModRevision: rev}, PrevKV: prev}
	}
	a1, a2, a3 := kv("a", "1", 2, 2, 1), kv("a", "2", 2, 4, 2), kv("a", "3", 10, 10, 1)
	b1, b2, c1 := kv("b", "1", 3, 3, 1), kv("b", "2", 7, 7, 1), kv("c", "1", 6, 6, 1)
	x1, x2, x3 := kv("x/1", "1", 9, 9, 1), kv("x/2", "2", 9, 9, 1), kv("x/3", "3", 9, 9, 1)
	return h, []sm.Event{
		{KV: a1},
		{KV: b1},
		{KV: a2, PrevKV: a1},
		del("b", 5, b1),
		{KV: c1},
		{KV: b2},
		del("a", 8, a2),
		{KV: x1}, {KV: x2}, {KV: x3},
		{KV: a3},
		del("x/1", 11, x1), del("x/2", 11, x2), del("x/3", 11, x3),
	}
}

func filterEvents(evs []sm.Event, from, to int64, match func(string) bool) []sm.Event {
	var out []sm.Event
	for _, e := range evs {
		if e.KV.ModRevision >= from && e.KV.ModRevision <= to && match(e.KV.Key) {
			out = append(out, e)
		}
	}
	return out
}

func TestEventsExact(t *testing.T) {
	h, all := eventsScenario(t)
	v := h.view()
	if v.Revision() != 11 {
		t.Fatalf("revision %d", v.Revision())
	}
	any := func(string) bool { return true }
	for _, tc := range []struct {
		from, to int64
		key, end string
		match    func(string) bool
	}{
		{1, 11, "", "\x00", any},
		{2, 11, "", "\x00", any},
		{4, 7, "", "\x00", any},
		{9, 9, "", "\x00", any},
		{11, 11, "", "\x00", any},
		{1, 11, "a", "", func(k string) bool { return k == "a" }},
		{5, 10, "a", "", func(k string) bool { return k == "a" }},
		{1, 11, "x/", "x0", func(k string) bool { return k >= "x/" && k < "x0" }},
		{1, 11, "x/2", "\x00", func(k string) bool { return k >= "x/2" }},
		{1, 11, "b", "x/2", func(k string) bool { return k >= "b" && k < "x/2" }},
		{1, 11, "nothing", "", func(string) bool { return false }},
	} {
		got, last := v.Events(tc.from, tc.to, tc.key, tc.end, 1000)
		want := filterEvents(all, tc.from, tc.to, tc.match)
		if !eventsEqual(got, want) {
			t.Fatalf("Events(%d, %d, %q, %q):\n%s\nwant\n%s", tc.from, tc.to, tc.key, tc.end, fmtEvents(got), fmtEvents(want))
		}
		if last != tc.to {
			t.Fatalf("Events(%d, %d, %q, %q): last %d", tc.from, tc.to, tc.key, tc.end, last)
		}
	}
	// Events carry the same data as a point-in-time read: every put's KV is
	// the version Range returns at its revision.
	for _, e := range all {
		r, _ := v.Range(rangeOp(e.KV.Key, "", sm.RangeOpts{Revision: e.KV.ModRevision}))
		if e.Delete != (len(r.KVs) == 0) || (!e.Delete && !kvEqual(r.KVs[0], e.KV)) {
			t.Fatalf("event %s vs range %s", fmtEvent(e), fmtKVs(r.KVs))
		}
	}
}

// pageEnd is the revision at which Events(from, to, ..., max) must stop: the
// first revision at which the matching events reach max, else to.
func pageEnd(evs []sm.Event, from, to int64, max int) int64 {
	n := 0
	for rev := from; rev <= to; rev++ {
		for _, e := range evs {
			if e.KV.ModRevision == rev {
				n++
			}
		}
		if n >= max {
			return rev
		}
	}
	return to
}

func TestEventsMaxNeverSplitsARevision(t *testing.T) {
	h, all := eventsScenario(t)
	v := h.view()
	for _, f := range []struct {
		key, end string
		match    func(string) bool
	}{
		{"", "\x00", func(string) bool { return true }},
		{"a", "", func(k string) bool { return k == "a" }},
		{"x/", "x0", func(k string) bool { return k >= "x/" && k < "x0" }},
	} {
		for max := 1; max <= 15; max++ {
			var got []sm.Event
			from := int64(1)
			for pages := 0; from <= 11; pages++ {
				if pages > 20 {
					t.Fatal("no progress")
				}
				page, last := v.Events(from, 11, f.key, f.end, max)
				want := filterEvents(all, from, 11, f.match)
				wantLast := pageEnd(want, from, 11, max)
				want = filterEvents(want, from, wantLast, f.match)
				if !eventsEqual(page, want) || last != wantLast {
					t.Fatalf("%q max %d from %d: last %d (want %d)\n%s\nwant\n%s", f.key, max, from, last, wantLast, fmtEvents(page), fmtEvents(want))
				}
				got = append(got, page...)
				from = last + 1
			}
			if want := filterEvents(all, 1, 11, f.match); !eventsEqual(got, want) {
				t.Fatalf("%q max %d: pages joined:\n%s", f.key, max, fmtEvents(got))
			}
		}
	}
	// A revision larger than max comes whole.
	page, last := v.Events(9, 11, "", "\x00", 1)
	if len(page) != 3 || last != 9 {
		t.Fatalf("max 1 over a 3-event revision: %d events, last %d", len(page), last)
	}
	page, last = v.Events(11, 11, "", "\x00", 2)
	if len(page) != 3 || last != 11 {
		t.Fatalf("max 2 at revision 11: %d events, last %d", len(page), last)
	}
	// max 0 covers nothing.
	if page, last := v.Events(3, 11, "", "\x00", 0); len(page) != 0 || last != 2 {
		t.Fatalf("max 0: %d events, last %d", len(page), last)
	}
}

// sortedByKey returns evs ordered by key. Within one revision, Apply reports
// events in op order while View.Events reports them in key order; neither
// order is documented, so the two are compared as sets per revision.
func sortedByKey(evs []sm.Event) []sm.Event {
	out := slices.Clone(evs)
	slices.SortStableFunc(out, func(a, b sm.Event) int { return strings.Compare(a.KV.Key, b.KV.Key) })
	return out
}

// The events Apply returns are the ones the history serves later.
func TestApplyEventsMatchHistory(t *testing.T) {
	h := newHarness(t)
	h.grant(1, 1000)
	cmds := []*sm.Command{
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp("a", "1"), putOp("b", "1"), {Kind: sm.OpPut, Key: "c", Lease: 1}}}},
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp("a", "2"), {Kind: sm.OpPut, Key: "d", Lease: 1}}}},
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpDelete, Key: "b", End: "\x00"}, putOp("a", "3")}}},
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpPut, Key: "e", Lease: 1}}}},
		{Kind: sm.CmdRevoke, LeaseID: 1},
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp("c", "again")}}},
	}
	for i, c := range cmds {
		res, ev := h.mustOK(c)
		hist, last := h.view().Events(res.Revision, res.Revision, "", "\x00", 100)
		if last != res.Revision || len(ev) == 0 || !eventsEqual(hist, sortedByKey(ev)) {
			t.Fatalf("#%d at %d:\napply:\n%s\nhistory:\n%s", i, res.Revision, fmtEvents(ev), fmtEvents(hist))
		}
		for _, e := range ev {
			if e.KV.ModRevision != res.Revision {
				t.Fatalf("#%d: %s", i, fmtEvent(e))
			}
		}
	}
}

func TestList(t *testing.T) {
	h := newHarness(t)
	for _, k := range []string{"d/a", "d/b/x", "d/b/y", "d/b-c", "d/c", "d/c/z", "d/e/f/g", "d/e/h", "e/x", "d", "dz", "d/zz", "d/gone"} {
		h.put(k, "v:"+k)
	}
	h.del("d/gone", "")
	h.put("d/e/f/g", "again")
	type ent struct {
		name string
		dir  bool
	}
	check := func(dir string, want ...ent) {
		t.Helper()
		got := h.view().List(dir)
		if len(got) != len(want) {
			t.Fatalf("List(%q) = %v, want %v", dir, got, want)
		}
		for i, e := range got {
			if e.Name != want[i].name || e.Dir != want[i].dir {
				t.Fatalf("List(%q)[%d] = %+v, want %+v", dir, i, e, want[i])
			}
			if e.Dir {
				if e.KV != nil {
					t.Fatalf("directory %q has a KV", e.Name)
				}
				continue
			}
			if e.KV == nil || e.KV.Key != e.Name || string(e.KV.Value) != "v:"+e.Name {
				t.Fatalf("entry %q: %s", e.Name, fmtKV(e.KV))
			}
		}
	}
	check("d/", ent{"d/a", false}, ent{"d/b-c", false}, ent{"d/b/", true}, ent{"d/c", false}, ent{"d/c/", true},
		ent{"d/e/", true}, ent{"d/zz", false})
	check("d/b/", ent{"d/b/x", false}, ent{"d/b/y", false})
	check("d/e/", ent{"d/e/f/", true}, ent{"d/e/h", false})
	check("", ent{"d", false}, ent{"d/", true}, ent{"dz", false}, ent{"e/", true})
	check("nope/")
	check("d/gone/")
	check("d/b/x/")
	// A directory whose keys are all deleted disappears.
	h.del("d/b/", "d/b0")
	check("d/", ent{"d/a", false}, ent{"d/b-c", false}, ent{"d/c", false}, ent{"d/c/", true}, ent{"d/e/", true}, ent{"d/zz", false})
}

func TestListManyChildren(t *testing.T) {
	h := newHarness(t)
	var want []string
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("r/%02d", i)
		if i%3 == 0 {
			for j := 0; j < 5; j++ {
				h.put(fmt.Sprintf("%s/%d", name, j), "x")
			}
			want = append(want, name+"/")
		} else {
			h.put(name, "x")
			want = append(want, name)
		}
	}
	got := h.view().List("r/")
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i] || got[i].Dir != (want[i][len(want[i])-1] == '/') {
			t.Fatalf("[%d] = %+v, want %q", i, got[i], want[i])
		}
	}
}
