package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// lockLoad: clients lock and unlock, each in its own session (a lone client
// in one per member, going through each in turn); every client its own
// lock, or all of them one lock (contended). One op is a lock plus an
// unlock.
func lockLoad(p params, s system, clients int, contended bool) figure {
	ls, ok := s.(lockSystem)
	if !ok {
		return figure{na: "n/a (no lock)"}
	}
	n := s.members()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Client c's mutexes: one on each member it goes through (memberFor),
	// each its own lock unless contended.
	per := 1
	if clients == 1 {
		per = n
	}
	mus := make([][]mutex, clients)
	defer func() {
		for _, ms := range mus {
			for _, m := range ms {
				if m != nil {
					m.close()
				}
			}
		}
	}()
	for c := range mus {
		mus[c] = make([]mutex, per)
		for j := range mus[c] {
			name := "/bench/lock/" + strconv.Itoa(c) + "/" + strconv.Itoa(j)
			if contended {
				name = "/bench/lock/shared"
			}
			var err error
			if mus[c][j], err = ls.newMutex(ctx, memberFor(clients, n, c, j), name); err != nil {
				return figure{err: err}
			}
		}
	}
	return figure{result: drive(clients, p.duration, func(ctx context.Context, c, i int) error {
		mu := mus[c][i%per]
		if err := mu.lock(ctx); err != nil {
			return err
		}
		// Unlock even when the run's context ended, or the next holder waits
		// for the session to expire.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return mu.unlock(uctx)
	})}
}

// electionLoad measures leader handover: two candidates on different
// members; the leader resigns and campaigns again at once, so leadership
// alternates. Each op is one handover; its latency runs from the leader's
// Resign call to the other candidate's Campaign returning.
func electionLoad(p params, s system) figure {
	ls, ok := s.(lockSystem)
	if !ok {
		return figure{na: "n/a (no election)"}
	}
	n := s.members()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cands []candidate
	defer func() {
		for _, c := range cands {
			c.close()
		}
	}()
	for i := range 2 {
		c, err := ls.newCandidate(ctx, i%n, "/bench/election")
		if err != nil {
			return figure{err: err}
		}
		cands = append(cands, c)
	}
	// Cancelled, not timed out: a call near a deadline fails early
	// (dragonboat refuses timeouts too small to complete), which is not an
	// error of the workload.
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	time.AfterFunc(p.duration/5+p.duration, stop)
	warmEnd := time.Now().Add(p.duration / 5)
	var resignedAt atomic.Int64 // UnixNano of the latest Resign call, 0 before the first
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs errCounter
		wg   sync.WaitGroup
	)
	for _, c := range cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for runCtx.Err() == nil {
				if err := c.campaign(runCtx); err != nil {
					if runCtx.Err() == nil {
						errs.add(fmt.Errorf("campaign: %w", err))
					}
					return
				}
				now := time.Now()
				if t := resignedAt.Load(); t != 0 && now.After(warmEnd) {
					mu.Lock()
					lat = append(lat, now.Sub(time.Unix(0, t)))
					mu.Unlock()
				}
				resignedAt.Store(time.Now().UnixNano())
				rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := c.resign(rctx)
				rcancel()
				if err != nil && !errors.Is(err, context.Canceled) {
					errs.add(fmt.Errorf("resign: %w", err))
				}
			}
		}()
	}
	wg.Wait()
	r := result{ops: int64(len(lat)), errs: errs.n.Load(), firstErr: errs.first, elapsed: p.duration}
	r.p50, r.p99 = percentiles(lat)
	return figure{result: r}
}
