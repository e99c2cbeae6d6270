package sm_test

import (
	"bytes"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Regression tests for bugs found by the fuzzers and the unit tests.

func TestRegressionDecoderLengthPastInput(t *testing.T) {
	// A length prefix exceeding the remaining input by at most its own
	// size used to slice out of range.
	if _, err := sm.DecodeCommand([]byte{1, 1, 1, 0, 0, 1}); err == nil {
		t.Fatal("decoded a truncated command")
	}
	if _, err := sm.DecodeResult([]byte{1, 0, 0, 0, 0, 1, 1, 1, 1}); err == nil {
		t.Fatal("decoded a truncated result")
	}
	m := sm.New(nil)
	if res, _ := m.Apply(1, []byte{1, 1, 1, 0, 0, 1}); res.Code != sm.CodeBadCommand {
		t.Fatalf("apply of a truncated command: code %d", res.Code)
	}
	if err := m.RecoverFromSnapshot(bytes.NewReader([]byte("CKSN\x01\x04\x00\x01\x00\x01\x01")), nil, nil); err == nil {
		t.Fatal("recovered from a truncated snapshot")
	}
}

func put(key, val string) sm.Op { return sm.Op{Kind: sm.OpPut, Key: key, Value: []byte(val)} }

func txn(ops ...sm.Op) []byte {
	return sm.EncodeCommand(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: ops}})
}

func TestRegressionDeleteAtCompactionRevisionKeepsItsEvent(t *testing.T) {
	m := sm.New(nil)
	m.Apply(1, txn(put("a", "1")))                      // rev 2
	m.Apply(2, txn(sm.Op{Kind: sm.OpDelete, Key: "a"})) // rev 3
	m.Apply(3, txn(put("b", "2")))                      // rev 4
	m.Apply(4, sm.EncodeCommand(&sm.Command{Kind: sm.CmdCompact, Revision: 3}))
	evs, last := m.View().Events(3, 4, "", "\x00", 100)
	if last != 4 || len(evs) != 2 || !evs[0].Delete || evs[0].KV == nil || evs[0].KV.Key != "a" || evs[0].KV.ModRevision != 3 {
		t.Fatalf("events from the compaction revision: %+v (last %d)", evs, last)
	}
	// A replica recovered from a snapshot serves the same.
	var buf bytes.Buffer
	if err := m.View().WriteTo(&buf, nil); err != nil {
		t.Fatal(err)
	}
	r := sm.New(nil)
	if err := r.RecoverFromSnapshot(&buf, nil, nil); err != nil {
		t.Fatal(err)
	}
	revs, _ := r.View().Events(3, 4, "", "\x00", 100)
	if len(revs) != 2 || !revs[0].Delete || revs[0].KV.Key != "a" {
		t.Fatalf("recovered replica's events: %+v", revs)
	}
}

func TestRegressionPutAndDeleteOfOneKeyInATxnIsRefused(t *testing.T) {
	m := sm.New(nil)
	m.Apply(1, txn(put("a", "1")))
	for _, ops := range [][]sm.Op{
		{put("a", "2"), {Kind: sm.OpDelete, Key: "a"}},
		{{Kind: sm.OpDelete, Key: "a"}, put("a", "2")},
		{{Kind: sm.OpDelete, Key: "", End: "\x00"}, put("b", "2")},
	} {
		res, ev := m.Apply(2, txn(ops...))
		if res.Code != sm.CodeDuplicateKey || len(ev) != 0 || m.View().Revision() != 2 {
			t.Fatalf("%+v: code %d, %d events, revision %d", ops, res.Code, len(ev), m.View().Revision())
		}
	}
}

func TestRegressionNegativeLeaseIsABadCommand(t *testing.T) {
	m := sm.New(nil)
	res, _ := m.Apply(1, txn(sm.Op{Kind: sm.OpPut, Key: "a", Lease: -1, LeaseTTL: 1000}))
	if res.Code != sm.CodeBadCommand || len(m.View().Leases()) != 0 {
		t.Fatalf("code %d, leases %v", res.Code, m.View().Leases())
	}
}

func TestRegressionEventsOfARevisionAreInKeyOrder(t *testing.T) {
	m := sm.New(nil)
	_, live := m.Apply(1, txn(put("c", "1"), put("a", "1"), put("b", "1")))
	hist, _ := m.View().Events(2, 2, "", "\x00", 100)
	for i, want := range []string{"a", "b", "c"} {
		if live[i].KV.Key != want || hist[i].KV.Key != want {
			t.Fatalf("event %d: live %s, history %s, want %s", i, live[i].KV.Key, hist[i].KV.Key, want)
		}
	}
}

func TestRegressionListSkipsTheKeyNamedLikeTheDirectory(t *testing.T) {
	m := sm.New(nil)
	m.Apply(1, txn(put("/d/", "x"), put("/d/a", "1")))
	got := m.View().List("/d/")
	if len(got) != 1 || got[0].Name != "/d/a" {
		t.Fatalf("List(/d/) = %+v", got)
	}
}
