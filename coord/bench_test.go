package coord_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/coordkit/coordkit/coord/coordtest"
)

// BenchmarkPut runs puts of 256-byte values from 64 goroutines against a
// one-member cluster, each goroutine cycling over 1,000 keys of its own (as
// bench's put workloads cycle): the whole write path in one process, for
// -benchmem (allocations per put) and -cpuprofile. Throughput is measured
// in bench/, not here.
func BenchmarkPut(b *testing.B) {
	c := coordtest.New(b, 1)
	n := c.Node(0)
	value := make([]byte, 256)
	var id atomic.Int64
	b.SetParallelism(32) // 64 goroutines on 2 CPUs
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		me := id.Add(1)
		keys := make([]string, 1000)
		for i := range keys {
			keys[i] = fmt.Sprintf("/bench/%d/%d", me, i)
		}
		for i := 0; pb.Next(); i++ {
			if _, err := n.Put(context.Background(), keys[i%len(keys)], value); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
