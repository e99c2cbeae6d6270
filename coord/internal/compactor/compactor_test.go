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
	v := m.View() // revision 121, nothing compacted
	if rev, ok := Due(v, 110); ok {
		t.Fatalf("due with 120 revisions of history, keeping 110: compact to %d", rev)
	}
	if rev, ok := Due(v, 100); !ok || rev != 21 {
		t.Fatalf("Due(keep 100) = %d, %v; want 21, true", rev, ok)
	}
}
