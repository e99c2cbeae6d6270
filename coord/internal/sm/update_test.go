package sm_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	dbsm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

type recorder struct {
	log       []string
	applied   []int64
	recovered []*sm.View
	events    [][]sm.Event
	reset     [][]sm.LeaseInfo
	checks    []hashCheck
}

type hashCheck struct {
	index uint64
	view  *sm.View
}

func (r *recorder) Applied(rev int64, events []sm.Event) {
	r.log = append(r.log, fmt.Sprintf("applied %d %d", rev, len(events)))
	r.applied = append(r.applied, rev)
	r.events = append(r.events, events)
}
func (r *recorder) LeaseRenewed(id, ttl int64, renew uint64) {
	r.log = append(r.log, fmt.Sprintf("renewed %d %d %d", id, ttl, renew))
}
func (r *recorder) Recovered(v *sm.View) {
	r.log = append(r.log, fmt.Sprintf("recovered %d", v.Revision()))
	r.recovered = append(r.recovered, v)
}
func (r *recorder) LeaseGone(id int64) { r.log = append(r.log, fmt.Sprintf("gone %d", id)) }
func (r *recorder) HashCheck(index uint64, v *sm.View) {
	r.log = append(r.log, fmt.Sprintf("check %d", index))
	r.checks = append(r.checks, hashCheck{index, v})
}
func (r *recorder) LeasesReset(l []sm.LeaseInfo) {
	r.log = append(r.log, fmt.Sprintf("reset %v", l))
	r.reset = append(r.reset, l)
}

func TestUpdateBatchAndListener(t *testing.T) {
	rec := &recorder{}
	m := sm.New(rec)
	cmds := [][]byte{
		sm.EncodeCommand(&sm.Command{Kind: sm.CmdGrant, LeaseID: 1, TTL: 100}),
		sm.EncodeCommand(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpPut, Key: "a", Value: []byte("1"), Lease: 1}}}}),
		{0xde, 0xad},
		sm.EncodeCommand(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpPut, Key: "b", Lease: 9, LeaseTTL: 900}}}}),
		sm.EncodeCommand(&sm.Command{Kind: sm.CmdKeepAlive, LeaseID: 5}),
		sm.EncodeCommand(&sm.Command{Kind: sm.CmdRevoke, LeaseID: 1}),
		sm.EncodeCommand(&sm.Command{Kind: sm.CmdKeepAlive, LeaseID: 9}),
	}
	var entries []dbsm.Entry
	for i, c := range cmds {
		entries = append(entries, dbsm.Entry{Index: uint64(10 + i), Cmd: c})
	}
	out, err := m.Update(entries)
	if err != nil || len(out) != len(cmds) {
		t.Fatalf("Update: %v, %d entries", err, len(out))
	}
	wantCodes := []sm.Code{sm.CodeOK, sm.CodeOK, sm.CodeBadCommand, sm.CodeOK, sm.CodeLeaseNotFound, sm.CodeOK, sm.CodeOK}
	wantRevs := []int64{1, 2, 2, 3, 3, 4, 4}
	for i, e := range out {
		res, err := sm.DecodeResult(e.Result.Data)
		if err != nil {
			t.Fatalf("#%d: result data: %v", i, err)
		}
		if e.Result.Value != uint64(wantCodes[i]) || res.Code != wantCodes[i] || res.Revision != wantRevs[i] {
			t.Fatalf("#%d: value %d result %+v", i, e.Result.Value, res)
		}
	}
	// Same outcome as applying one by one.
	m2 := sm.New(nil)
	for i, c := range cmds {
		res, _ := m2.Apply(uint64(10+i), c)
		if !bytes.Equal(sm.EncodeResult(res), out[i].Result.Data) {
			t.Fatalf("#%d: Apply and Update disagree", i)
		}
	}
	if m.View().Hash() != m2.View().Hash() || m.View().Applied() != 16 {
		t.Fatalf("hash or applied index differ (applied %d)", m.View().Applied())
	}
	want := []string{"renewed 1 100 10", "renewed 9 900 13", "renewed 9 900 16", "gone 1", "applied 4 3"}
	if fmt.Sprint(rec.log) != fmt.Sprint(want) {
		t.Fatalf("listener log %q, want %q", rec.log, want)
	}
	if rec.applied[0] != m.View().Revision() {
		t.Fatalf("listener told revision %d, the view has %d", rec.applied[0], m.View().Revision())
	}
	evs := rec.events[0]
	if len(evs) != 3 || evs[0].KV.Key != "a" || evs[0].KV.ModRevision != 2 || evs[1].KV.Key != "b" || evs[1].KV.ModRevision != 3 ||
		!evs[2].Delete || evs[2].KV.Key != "a" || evs[2].KV.ModRevision != 4 {
		t.Fatalf("events %s", fmtEvents(evs))
	}
	if v, _ := m.Lookup(nil); v.(*sm.View) != m.View() {
		t.Fatal("Lookup does not return the latest view")
	}

	// Recovery reports the whole lease table, then that the state jumped.
	snap := snapshotBytes(t, m.View())
	rec2 := &recorder{}
	m3 := sm.New(rec2)
	if err := m3.RecoverFromSnapshot(bytes.NewReader(snap), nil, nil); err != nil {
		t.Fatal(err)
	}
	if len(rec2.reset) != 1 || fmt.Sprint(rec2.reset[0]) != fmt.Sprint([]sm.LeaseInfo{{ID: 9, TTL: 900, Renew: 16}}) ||
		len(rec2.recovered) != 1 || rec2.recovered[0] != m3.View() || len(rec2.applied) != 0 || len(rec2.events) != 0 || len(rec2.log) != 2 ||
		!strings.HasPrefix(rec2.log[1], "recovered ") {
		t.Fatalf("recovery notifications %q", rec2.log)
	}
	// A failed recovery notifies nothing.
	_ = m3.RecoverFromSnapshot(bytes.NewReader([]byte("nope")), nil, nil)
	if len(rec2.log) != 2 {
		t.Fatalf("failed recovery notified: %q", rec2.log)
	}
	if err := m3.Close(); err != nil {
		t.Fatal(err)
	}
	// An empty batch publishes a view and notifies with no events.
	if _, err := m.Update(nil); err != nil || rec.log[len(rec.log)-1] != "applied 4 0" {
		t.Fatalf("empty update: %v %q", err, rec.log)
	}
}

// Views are taken lazily, once per batch at most, and never change.
func TestViewsAreSharedAndImmutable(t *testing.T) {
	m := sm.New(nil)
	put := func(i int, k, v string) {
		c := &sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp(k, v)}}}
		if _, err := m.Update([]dbsm.Entry{{Index: uint64(i), Cmd: sm.EncodeCommand(c)}}); err != nil {
			t.Fatal(err)
		}
	}
	put(1, "a", "1")
	v1 := m.View()
	if v2 := m.View(); v2 != v1 {
		t.Fatal("two views with no write between them differ")
	}
	if r, _ := m.Lookup(nil); r.(*sm.View) != v1 {
		t.Fatal("Lookup and View disagree")
	}
	put(2, "a", "2")
	put(3, "b", "3")
	v3 := m.View()
	if v3 == v1 || v3.Revision() != 4 || v3.Applied() != 3 || v1.Revision() != 2 || v1.Applied() != 1 {
		t.Fatalf("views: first at rev %d applied %d, last at rev %d applied %d", v1.Revision(), v1.Applied(), v3.Revision(), v3.Applied())
	}
	r1, _ := v1.Range(rangeOp("", "\x00", sm.RangeOpts{}))
	r3, _ := v3.Range(rangeOp("", "\x00", sm.RangeOpts{}))
	if len(r1.KVs) != 1 || string(r1.KVs[0].Value) != "1" || len(r3.KVs) != 2 || string(r3.KVs[0].Value) != "2" {
		t.Fatalf("old view %s, new view %s", fmtKVs(r1.KVs), fmtKVs(r3.KVs))
	}
}

// Readers use views while apply goes on; run with -race.
func TestConcurrentReaders(t *testing.T) {
	m := sm.New(nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := m.View()
				rev := v.Revision()
				kvs, code := v.Range(rangeOp("", "\x00", sm.RangeOpts{}))
				if code != sm.CodeOK {
					t.Error(code)
					return
				}
				for _, kv := range kvs.KVs {
					if kv.ModRevision > rev {
						t.Errorf("view at %d shows %s", rev, fmtKV(kv))
						return
					}
				}
				v.Events(max(v.CompactRevision(), 1), rev, "", "\x00", 50)
				v.List("")
				v.Hash()
				_ = v.WriteTo(&bytes.Buffer{}, nil)
			}
		}()
	}
	for i := 1; i <= 600; i++ {
		c := &sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp(fmt.Sprintf("k/%d", i%37), fmt.Sprint(i))}}}
		if i%50 == 0 {
			c = &sm.Command{Kind: sm.CmdCompact, Revision: m.View().Revision() - 10}
		}
		if i%2 == 0 {
			m.Apply(uint64(i), sm.EncodeCommand(c))
		} else if _, err := m.Update([]dbsm.Entry{{Index: uint64(i), Cmd: sm.EncodeCommand(c)}}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}
