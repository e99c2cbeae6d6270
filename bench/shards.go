package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// shardsWorkload measures what the shard count costs or buys on this
// machine: 3 members in one process, puts with 16-byte values spread over 16
// top-level directories, sequentially and from 64 and 256 clients.
func shardsWorkload(d time.Duration, out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "shards\tclients\tputs/s\tp50\tp99\terrors\t")
	value := []byte(strings.Repeat("v", 16))
	for _, shards := range []int{1, 2, 4, 8} {
		nodes, stop, err := coordCluster(3, func(c *coord.Config) { c.Shards = shards })
		if err != nil {
			return err
		}
		for _, clients := range []int{1, 64, 256} {
			r := drive(clients, d, func(ctx context.Context, c, i int) error {
				n := nodes[c%len(nodes)]
				_, err := n.Put(ctx, fmt.Sprintf("/d%d/c%d-%d", (c+i)%16, c, i%1000), value)
				return err
			})
			fmt.Fprintf(tw, "%d\t%d\t%.0f\t%v\t%v\t%d\t\n", shards, clients, r.opsPerSec(),
				r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.errs)
		}
		stop()
	}
	return tw.Flush()
}
