package compactor

import (
	"testing"

	dbsm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Compaction is due once the history holds a tenth more than it keeps,
// and leaves exactly what it keeps.
func TestDue(t *testing.T) {
	m := sm.New(nil)
	var ents []dbsm.Entry
	for i := range 120 {
		c := &sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpPut, Key: "/k", Value: []byte("v")}}}}
		ents = append(ents, dbsm.Entry{Index: uint64(i + 1), Cmd: sm.EncodeCommand(c)})
	}
	if _, err := m.Update(ents); err != nil {
		t.Fatal(err)
	}
	rev, compacted := m.Revisions()
	if rev != 121 || compacted != 0 || rev != m.View().Revision() {
		t.Fatalf("Revisions() = %d, %d; want 121, 0 as the view says", rev, compacted)
	}
	if rev, ok := Due(rev, compacted, 110); ok {
		t.Fatalf("due with 120 revisions of history, keeping 110: compact to %d", rev)
	}
	if rev, ok := Due(rev, compacted, 100); !ok || rev != 21 {
		t.Fatalf("Due(keep 100) = %d, %v; want 21, true", rev, ok)
	}
	// Applied, the compaction shows in Revisions, and nothing more is due.
	c := &sm.Command{Kind: sm.CmdCompact, Revision: 21}
	if _, err := m.Update([]dbsm.Entry{{Index: 121, Cmd: sm.EncodeCommand(c)}}); err != nil {
		t.Fatal(err)
	}
	if rev, compacted = m.Revisions(); rev != 121 || compacted != 21 {
		t.Fatalf("after compacting to 21: Revisions() = %d, %d", rev, compacted)
	}
	if to, ok := Due(rev, compacted, 100); ok {
		t.Fatalf("due again right after compacting: to %d", to)
	}
}
