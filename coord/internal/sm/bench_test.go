package sm_test

import (
	"fmt"
	"math/rand"
	"testing"

	dbsm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// BenchmarkUpdatePuts applies puts of 16-byte values to random keys among
// 100,000, in batches of 64, each with a request ID, compacting history to
// the last 10,000 revisions every 1,000 as a shard's leader does: the state
// machine's share of bench's put workloads, once every key exists. One op
// is one put.
func BenchmarkUpdatePuts(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	benchmarkUpdate(b, func(uint64) string {
		return fmt.Sprintf("/bench/put/%d/%d", rng.Intn(256), rng.Intn(100_000/256))
	})
}

// BenchmarkUpdateCreates is BenchmarkUpdatePuts with every put creating a
// key, as in bench's put workloads while they last under 1,000 puts per
// client.
func BenchmarkUpdateCreates(b *testing.B) {
	benchmarkUpdate(b, func(seq uint64) string { return fmt.Sprintf("/bench/put/%d/%d", seq%256, seq/256) })
}

func benchmarkUpdate(b *testing.B, key func(seq uint64) string) {
	const keys, batch, keep = 100_000, 64, 10_000
	m := sm.New(nil)
	idx := uint64(0)
	val := []byte("0123456789abcdef")
	seq := uint64(0)
	compacted := int64(0)
	mk := func() []byte {
		seq++
		return sm.EncodeCommand(&sm.Command{Client: 1 + seq%256, Seq: seq, Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{
			{Kind: sm.OpPut, Key: key(seq), Value: val}}}})
	}
	apply := func(n int) {
		entries := make([]dbsm.Entry, 0, batch)
		for i := 0; i < n; i += batch {
			entries = entries[:0]
			for j := i; j < n && j < i+batch; j++ {
				idx++
				entries = append(entries, dbsm.Entry{Index: idx, Cmd: mk()})
			}
			out, err := m.Update(entries)
			if err != nil {
				b.Fatal(err)
			}
			// Compact as a leader does, without taking a View: after one,
			// the next write to every B-tree node copies it.
			res, err := sm.DecodeResult(out[len(out)-1].Result.Data)
			if err != nil {
				b.Fatal(err)
			}
			if res.Revision-compacted > keep+keep/10 {
				compacted = res.Revision - keep
				idx++
				m.Apply(idx, sm.EncodeCommand(&sm.Command{Kind: sm.CmdCompact, Revision: compacted}))
			}
		}
	}
	apply(keys) // warm: history is at its steady size (for puts, most keys exist)
	b.ReportAllocs()
	b.ResetTimer()
	apply(b.N)
}
