package sm_test

import (
	"slices"
	"testing"

	dbsm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// TestIntegrityCheckNamesTheDivergedReplica runs three replicas over one
// log: a check in the middle of a batch hands each replica's listener the
// state as of the check (not the batch's end); one replica, tampered with
// before the check, hashes differently; once every report is applied, every replica's
// CORRUPT alarm names that replica alone, writes are refused and reads,
// keep-alives and membership records are not, the alarm and the check
// survive a snapshot, and clearing the alarm lets writes in again without
// the check's late reports raising it again.
func TestIntegrityCheckNamesTheDivergedReplica(t *testing.T) {
	var reps [3]*sm.Machine
	var recs [3]*recorder
	for i := range reps {
		recs[i] = &recorder{}
		reps[i] = sm.New(recs[i])
	}
	idx := uint64(0)
	apply := func(cmds ...*sm.Command) []sm.Code {
		var entries []dbsm.Entry
		for _, c := range cmds {
			idx++
			entries = append(entries, dbsm.Entry{Index: idx, Cmd: sm.EncodeCommand(c)})
		}
		var codes []sm.Code
		for r, m := range reps {
			out, err := m.Update(slices.Clone(entries))
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range out {
				if r == 0 {
					codes = append(codes, sm.Code(e.Result.Value))
				} else if sm.Code(e.Result.Value) != codes[i] {
					t.Fatalf("replicas disagree on entry %d: %d and %d", e.Index, codes[i], e.Result.Value)
				}
			}
		}
		return codes
	}
	put := func(k, v string) *sm.Command {
		return &sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp(k, v)}}}
	}
	apply(put("/a", "1"), &sm.Command{Kind: sm.CmdGrant, LeaseID: 5, TTL: 10000})
	if !reps[2].Tamper("/a", []byte("flipped")) || reps[2].Tamper("/nope", nil) {
		t.Fatal("Tamper")
	}
	apply(put("/b", "2"), &sm.Command{Kind: sm.CmdHashCheck}, put("/c", "3"))
	check := idx - 1
	for i, rec := range recs {
		if len(rec.checks) != 1 || rec.checks[0].index != check {
			t.Fatalf("replica %d: listener told of checks %v, want index %d", i, rec.checks, check)
		}
		if v := rec.checks[0].view; v.Revision() != 3 || len(rangeAll(t, v, 0)) != 2 {
			t.Fatalf("replica %d: the check's view is at revision %d, want 3 (before /c)", i, v.Revision())
		}
	}
	var hashes []uint64
	for _, rec := range recs {
		hashes = append(hashes, rec.checks[0].view.Hash())
	}
	if hashes[0] != hashes[1] || hashes[0] == hashes[2] {
		t.Fatalf("hashes %x: want the tampered replica's alone to differ", hashes)
	}
	apply(&sm.Command{Kind: sm.CmdHashReport, Check: check, Replica: 11, Hash: hashes[0]})
	if c := reps[0].View().Corrupt(); c != nil {
		t.Fatalf("one report raised %v", c)
	}
	apply(&sm.Command{Kind: sm.CmdHashReport, Check: check, Replica: 13, Hash: hashes[2]})
	for i, m := range reps {
		if c := m.View().Corrupt(); !slices.Equal(c, []uint64{11, 13}) {
			t.Fatalf("replica %d: a 1-1 mismatch named %v, want both", i, c)
		}
	}
	apply(&sm.Command{Kind: sm.CmdHashReport, Check: check, Replica: 12, Hash: hashes[1]},
		&sm.Command{Kind: sm.CmdHashReport, Check: check, Replica: 12, Hash: 99},     // a second report: ignored
		&sm.Command{Kind: sm.CmdHashReport, Check: check - 1, Replica: 14, Hash: 99}) // another check's: ignored
	for i, m := range reps {
		if c := m.View().Corrupt(); !slices.Equal(c, []uint64{13}) {
			t.Fatalf("replica %d: CORRUPT names %v, want [13]", i, c)
		}
		if hc, _ := m.View().HashCheck(); hc.Index != check || hc.Revision != 3 || len(hc.Reports) != 3 {
			t.Fatalf("replica %d: check %+v", i, hc)
		}
	}
	rev := reps[0].View().Revision()
	refused := apply(put("/d", "4"),
		&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpDelete, Key: "/a"}}}},
		&sm.Command{Kind: sm.CmdCompact, Revision: 2},
		&sm.Command{Kind: sm.CmdGrant, LeaseID: 6, TTL: 1000},
		&sm.Command{Kind: sm.CmdRevoke, LeaseID: 5},
		&sm.Command{Kind: sm.CmdExpire, Expire: []sm.ExpireItem{{ID: 5, Renew: 2}}},
		&sm.Command{Kind: sm.CmdAlarm, Alarm: sm.AlarmCorrupt, Activate: true})
	want := []sm.Code{sm.CodeCorrupt, sm.CodeCorrupt, sm.CodeCorrupt, sm.CodeCorrupt, sm.CodeCorrupt, sm.CodeCorrupt, sm.CodeBadCommand}
	if !slices.Equal(refused, want) || reps[0].View().Revision() != rev || len(reps[0].View().Leases()) != 1 {
		t.Fatalf("under CORRUPT: codes %v, want %v; revision %d (was %d)", refused, want, reps[0].View().Revision(), rev)
	}
	let := apply(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpRange, Key: "/a"}}}},
		&sm.Command{Kind: sm.CmdKeepAlive, LeaseID: 5},
		&sm.Command{Kind: sm.CmdMember, Member: sm.MemberRecord{ID: 14, Name: "n4", Address: "x"}})
	if !slices.Equal(let, []sm.Code{sm.CodeOK, sm.CodeOK, sm.CodeOK}) {
		t.Fatalf("a read, a keep-alive and a member record under CORRUPT: %v", let)
	}
	// The alarm and the check survive a snapshot.
	other := recoverMachine(t, snapshotBytes(t, reps[0].View()))
	hc, _ := other.View().HashCheck()
	if !slices.Equal(other.View().Corrupt(), []uint64{13}) || hc.Index != check || len(hc.Reports) != 3 {
		t.Fatalf("after a snapshot: CORRUPT %v, check %+v", other.View().Corrupt(), hc)
	}
	// Cleared, it stays cleared when a late report of the check comes.
	apply(&sm.Command{Kind: sm.CmdAlarm, Alarm: sm.AlarmCorrupt},
		&sm.Command{Kind: sm.CmdHashReport, Check: check, Replica: 15, Hash: 1234})
	if c := reps[0].View().Corrupt(); c != nil {
		t.Fatalf("after clearing: %v", c)
	}
	if codes := apply(put("/d", "4")); codes[0] != sm.CodeOK {
		t.Fatalf("a put after clearing: %d", codes[0])
	}
}
