package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// result is one measured run.
type result struct {
	ops      int64
	errs     int64
	firstErr error // the first of errs
	elapsed  time.Duration
	p50, p99 time.Duration
}

// errCounter counts errors and keeps the first.
type errCounter struct {
	n     atomic.Int64
	once  sync.Once
	first error
}

func (e *errCounter) add(err error) {
	e.n.Add(1)
	e.once.Do(func() { e.first = err })
}

func (r result) opsPerSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

// drive runs op from `clients` goroutines for d (after a short warm-up) and
// records every latency. Errors while the run is ending are not counted.
func drive(clients int, d time.Duration, op func(ctx context.Context, client, i int) error) result {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ops atomic.Int64
	var errs errCounter
	lat := make([]hist, clients)
	var measuring atomic.Bool
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			// No per-op timeout: ending the run cancels ctx, which ends any
			// op in flight, and a timer per op would cost more than an op
			// served from memory.
			for i := 0; ctx.Err() == nil; i++ {
				t0 := time.Now()
				err := op(ctx, c, i)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					if ctx.Err() == nil {
						errs.add(err)
					}
					continue
				}
				ops.Add(1)
				lat[c].add(time.Since(t0))
			}
		}(c)
	}
	time.Sleep(d / 5) // warm-up, not measured
	measuring.Store(true)
	start := time.Now()
	time.Sleep(d)
	// A stalled system (an election, or a machine busy elsewhere) may not
	// finish a single op in a short window: measure on until one finishes,
	// within bounds, rather than report nothing.
	for limit := start.Add(max(10*d, 10*time.Second)); ops.Load() == 0 && time.Now().Before(limit); {
		time.Sleep(10 * time.Millisecond)
	}
	measuring.Store(false)
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	return summarize(ops.Load(), &errs, elapsed, lat)
}

// summarize merges the clients' histograms into a result.
// errs must not change any more.
func summarize(ops int64, errs *errCounter, elapsed time.Duration, lat []hist) result {
	var all hist
	for i := range lat {
		all.merge(&lat[i])
	}
	return result{ops: ops, errs: errs.n.Load(), firstErr: errs.first, elapsed: elapsed,
		p50: all.quantile(0.5), p99: all.quantile(0.99)}
}

// driveCount runs op `total` times, spread over `clients` goroutines, and
// measures all of them (no warm-up): for workloads whose unit is a fixed
// population, such as 10,000 leases.
func driveCount(clients, total int, op func(ctx context.Context, client, i int) error) result {
	var next, ops atomic.Int64
	var errs errCounter
	lat := make([]hist, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := op(ctx, c, i)
				cancel()
				if err != nil {
					errs.add(err)
					continue
				}
				ops.Add(1)
				lat[c].add(time.Since(t0))
			}
		}(c)
	}
	wg.Wait()
	return summarize(ops.Load(), &errs, time.Since(start), lat)
}

// percentiles sorts all and returns its median and 99th percentile.
func percentiles(all []time.Duration) (p50, p99 time.Duration) {
	if len(all) == 0 {
		return 0, 0
	}
	slices.Sort(all)
	return all[len(all)/2], all[len(all)*99/100]
}
