package sm_test

import (
	"bytes"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

func putReq(client, seq uint64, key, val string) *sm.Command {
	return &sm.Command{Client: client, Seq: seq, Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp(key, val)}}}
}

// allKVs is every live key of v, formatted, with the revision.
func allKVs(t testing.TB, v *sm.View) string {
	t.Helper()
	r, code := v.Range(rangeOp("", "\x00", sm.RangeOpts{}))
	if code != sm.CodeOK {
		t.Fatalf("range: code %d", code)
	}
	return fmt.Sprintf("rev %d: %s", v.Revision(), fmtKVs(r.KVs))
}

// A request proposed again is answered with its first result and applied
// once; a copy of a request its client has moved past is not applied.
func TestRequestRetriesApplyOnce(t *testing.T) {
	h := newHarness(t)
	first, ev := h.apply(putReq(7, 1, "a", "1"))
	if first.Code != sm.CodeOK || len(ev) != 1 {
		t.Fatalf("first: %+v, %d events", first, len(ev))
	}
	hash := h.view().Hash()
	again, ev := h.apply(putReq(7, 1, "a", "1"))
	if !bytes.Equal(sm.EncodeResult(again), sm.EncodeResult(first)) || len(ev) != 0 {
		t.Fatalf("retry: %+v, %d events; first %+v", again, len(ev), first)
	}
	if h.view().Hash() != hash || h.view().Applied() != h.idx {
		t.Fatal("a retry changed the state, or the applied index did not move")
	}
	// Another client's request with the same Seq is its own.
	if r, _ := h.apply(putReq(8, 1, "a", "2")); r.Code != sm.CodeOK || r.Revision != 3 {
		t.Fatalf("other client: %+v", r)
	}
	if r, _ := h.apply(putReq(7, 2, "b", "1")); r.Code != sm.CodeOK || r.Revision != 4 {
		t.Fatalf("next request: %+v", r)
	}
	hash = h.view().Hash()
	if r, ev := h.apply(putReq(7, 1, "a", "1")); r.Code != sm.CodeStale || len(ev) != 0 || h.view().Hash() != hash {
		t.Fatalf("stale copy: %+v, %d events", r, len(ev))
	}
	// A refused request is not remembered: it changed nothing, and a retry
	// is applied (here, once the lease exists).
	lc := &sm.Command{Client: 7, Seq: 3, Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpPut, Key: "l", Lease: 5}}}}
	if r, _ := h.apply(lc); r.Code != sm.CodeLeaseNotFound || h.view().Hash() != hash {
		t.Fatalf("put with a missing lease: %+v", r)
	}
	h.grant(5, 1000)
	if r, _ := h.apply(lc); r.Code != sm.CodeOK {
		t.Fatalf("retry once the lease exists: %+v", r)
	}
	h.apply(&sm.Command{Kind: sm.CmdRevoke, LeaseID: 5})
	// A request without an ID is applied every time.
	base := h.view().Revision()
	for i := range 2 {
		if r, _ := h.apply(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp("c", "1")}}}); r.Revision != base+int64(1+i) {
			t.Fatalf("plain put %d: %+v", i, r)
		}
	}
	// A result too large to keep: the retry is not applied, and says so.
	big := strings.Repeat("x", 2<<10)
	if r, _ := h.apply(putReq(9, 1, "big", big)); r.Code != sm.CodeOK {
		t.Fatal(r.Code)
	}
	c := &sm.Command{Client: 9, Seq: 2, Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpPut, Key: "big", Value: []byte("y"), PrevKV: true}}}}
	r, _ := h.apply(c)
	if r.Code != sm.CodeOK || len(r.Ops[0].PrevKVs) != 1 {
		t.Fatalf("put with a large previous value: %+v", r)
	}
	rev := h.view().Revision()
	if r, _ := h.apply(c); r.Code != sm.CodeResultLost || h.view().Revision() != rev {
		t.Fatalf("retry of a large result: code %d, revision %d -> %d", r.Code, rev, h.view().Revision())
	}

	// The table survives a snapshot: a retry after recovery is still
	// answered, not applied.
	m2 := sm.New(nil)
	if err := m2.RecoverFromSnapshot(bytes.NewReader(snapshotBytes(t, h.view())), nil, nil); err != nil {
		t.Fatal(err)
	}
	sameState(t, h.view(), m2.View())
	if m2.View().Hash() != h.view().Hash() {
		t.Fatal("recovered replica's hash differs")
	}
	res, _ := m2.Apply(h.idx+1, sm.EncodeCommand(putReq(8, 1, "a", "2")))
	if res.Code != sm.CodeOK || res.Revision != 3 || m2.View().Revision() != rev {
		t.Fatalf("retry after recovery: %+v (revision %d)", res, m2.View().Revision())
	}
	// The hash sees the table: the same keys with another request
	// history hash differently.
	h2 := newHarness(t)
	h2.apply(putReq(7, 1, "a", "1"))
	h3 := newHarness(t)
	h3.apply(putReq(6, 1, "a", "1"))
	if allKVs(t, h2.view()) != allKVs(t, h3.view()) || h2.view().Hash() == h3.view().Hash() {
		t.Fatal("the hash does not cover the request table")
	}
}

// Random deliveries (first sends, retries, late copies) of requests from a
// few clients leave the same keys as applying each request once, in the
// order of its first delivery that was not overtaken.
func TestRequestRandomRedelivery(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		m, ref := newHarness(t), newHarness(t)
		type client struct{ id, seq, done uint64 } // done: highest seq applied
		clients := make([]*client, 4)
		for i := range clients {
			clients[i] = &client{id: uint64(100 + i), seq: 1}
		}
		cmd := func(c *client, seq uint64) *sm.Command {
			return putReq(c.id, seq, fmt.Sprintf("k%d", rng.Intn(5)), fmt.Sprintf("%d/%d", c.id, seq))
		}
		sent := map[[2]uint64]*sm.Command{}
		var results = map[[2]uint64][]byte{}
		for step := 0; step < 400; step++ {
			c := clients[rng.Intn(len(clients))]
			switch rng.Intn(4) {
			case 0: // the client gives up on its request and moves on
				c.seq++
			case 1: // a late copy of an older request
				if c.seq > 1 {
					old := uint64(1 + rng.Intn(int(c.seq-1)))
					if sc, ok := sent[[2]uint64{c.id, old}]; ok {
						if r, _ := m.apply(sc); r.Code != sm.CodeStale && r.Code != sm.CodeOK {
							t.Fatalf("seed %d: late copy: code %d", seed, r.Code)
						} else if r.Code == sm.CodeOK && !bytes.Equal(sm.EncodeResult(r), results[[2]uint64{c.id, old}]) {
							t.Fatalf("seed %d: a late copy of the latest request was applied again", seed)
						}
					}
				}
			default: // send or retry the current request
				key := [2]uint64{c.id, c.seq}
				sc, ok := sent[key]
				if !ok {
					sc = cmd(c, c.seq)
					sent[key] = sc
				}
				r, _ := m.apply(sc)
				if ok && c.done == c.seq {
					if !bytes.Equal(sm.EncodeResult(r), results[key]) {
						t.Fatalf("seed %d: retry answered %+v, first %x", seed, r, results[key])
					}
					continue
				}
				if r.Code != sm.CodeOK {
					t.Fatalf("seed %d: first delivery: code %d", seed, r.Code)
				}
				results[key] = sm.EncodeResult(r)
				c.done = c.seq
				plain := *sc
				plain.Client, plain.Seq = 0, 0
				ref.apply(&plain)
			}
		}
		if got, want := allKVs(t, m.view()), allKVs(t, ref.view()); got != want {
			t.Fatalf("seed %d:\ngot  %s\nwant %s", seed, got, want)
		}
	}
}

// The table is bounded: past its limit the requests applied longest ago are
// forgotten (a retry of one is applied again), recent ones are kept.
func TestRequestTableBound(t *testing.T) {
	h := newHarness(t)
	h.apply(putReq(1, 1, "a", "1"))
	const others = 1<<14 + 1 // one past the limit
	for i := range others {
		// A Txn whose compare fails writes nothing but is remembered.
		h.apply(&sm.Command{Client: uint64(2 + i), Seq: 1, Kind: sm.CmdTxn, Txn: sm.Txn{
			Compares: []sm.Compare{{Target: sm.TargetVersion, Result: sm.CmpGreater, Key: "a", Int: 1 << 40}}}})
	}
	rev := h.view().Revision()
	if r, _ := h.apply(putReq(1<<40, 1, "b", "1")); r.Code != sm.CodeOK || h.view().Revision() != rev+1 {
		t.Fatalf("new request: %+v", r)
	}
	if r, _ := h.apply(putReq(1<<40, 1, "b", "1")); r.Revision != rev+1 || h.view().Revision() != rev+1 {
		t.Fatalf("a recent request was forgotten: %+v", r)
	}
	if r, _ := h.apply(putReq(1, 1, "a", "1")); r.Code != sm.CodeOK || h.view().Revision() != rev+2 {
		t.Fatalf("the oldest request is still remembered: %+v, revision %d", r, h.view().Revision())
	}
}
