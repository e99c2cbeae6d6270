package main

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// result is one measured run.
type result struct {
	ops      int64
	errs     int64
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (r result) opsPerSec() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// drive runs op from `clients` goroutines for d (after a short warm-up) and
// records every latency.
func drive(clients int, d time.Duration, op func(ctx context.Context, client, i int) error) result {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ops, errs atomic.Int64
	lat := make([][]time.Duration, clients)
	var measuring atomic.Bool
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				t0 := time.Now()
				rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
				err := op(rctx, c, i)
				rcancel()
				if !measuring.Load() {
					continue
				}
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				ops.Add(1)
				lat[c] = append(lat[c], time.Since(t0))
			}
		}(c)
	}
	time.Sleep(d / 5) // warm-up, not measured
	measuring.Store(true)
	start := time.Now()
	time.Sleep(d)
	measuring.Store(false)
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	r := result{ops: ops.Load(), errs: errs.Load(), elapsed: elapsed}
	if len(all) > 0 {
		r.p50 = all[len(all)/2]
		r.p99 = all[len(all)*99/100]
	}
	return r
}
