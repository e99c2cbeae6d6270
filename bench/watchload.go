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

// maxWatchPuts bounds the puts of one watch run.
const maxWatchPuts = 1 << 17

// watchLoad measures put-to-event latency: `watchers` watches of one key on
// member 1 (member 0 on a 1-member cluster), and puts through member 0, one
// at a time, each waiting until every watcher got its event. Latency runs
// from the start of the put to a watcher's callback; ops counts events
// delivered. Every event must reach every watcher exactly once: what never
// arrives is counted as lost, anything else as an error.
func watchLoad(p params, s system, watchers int) figure {
	ws, ok := s.(watchSystem)
	if !ok {
		return figure{na: "n/a (no watch)"}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const key = "/bench/watched"
	wm, pm := 1%s.members(), 0
	after, err := ws.revision(ctx, wm)
	if err != nil {
		return figure{err: err}
	}

	var (
		sent     = make([]atomic.Int64, maxWatchPuts) // UnixNano of put i's start
		got      = make([]atomic.Int32, maxWatchPuts) // watchers that got put i
		complete = make(chan int, 1)                  // put i reached every watcher
		lat      = make([][]time.Duration, watchers)  // lat[w] is owned by watcher w
		stopped  sync.RWMutex                         // held by callbacks; Lock stops them
		closed   bool
		bad      atomic.Int64 // malformed, out-of-range or duplicate events, failed watches
		failMu   sync.Mutex
		failErr  error
	)
	fail := func(err error) {
		bad.Add(1)
		failMu.Lock()
		failErr = errors.Join(failErr, err)
		failMu.Unlock()
	}
	callback := func(w int) func([]byte) {
		return func(v []byte) {
			now := time.Now()
			stopped.RLock()
			defer stopped.RUnlock()
			if closed {
				return
			}
			i, err := strconv.Atoi(string(v))
			if err != nil || i < 0 || i >= maxWatchPuts {
				fail(fmt.Errorf("watcher %d: unexpected value %q", w, v))
				return
			}
			lat[w] = append(lat[w], now.Sub(time.Unix(0, sent[i].Load())))
			switch k := got[i].Add(1); {
			case k == int32(watchers):
				select {
				case complete <- i:
				default:
				}
			case k > int32(watchers):
				fail(fmt.Errorf("put %d delivered more than once", i))
			}
		}
	}

	// Register the watchers from a few goroutines; each call returns once
	// its watch is registered.
	var next atomic.Int64
	var wg sync.WaitGroup
	regErrs := make([]error, 16)
	for g := range regErrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := int(next.Add(1) - 1); w < watchers; w = int(next.Add(1) - 1) {
				if err := ws.watch(ctx, wm, key, after, callback(w), fail); err != nil {
					regErrs[g] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(regErrs...); err != nil {
		return figure{err: fmt.Errorf("registering watchers: %w", err)}
	}

	var putErrs int64
	puts := 0
	start := time.Now()
	for time.Since(start) < p.duration && puts < maxWatchPuts {
		sent[puts].Store(time.Now().UnixNano())
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.put(pctx, pm, key, []byte(strconv.Itoa(puts)))
		pcancel()
		if err != nil {
			putErrs++
			continue // the same index again: an unknown outcome may still deliver
		}
		puts++
		select {
		case <-complete:
		case <-time.After(10 * time.Second):
		}
	}
	elapsed := time.Since(start)
	// Stragglers: give undelivered events a little longer.
	allDelivered := func() bool {
		for i := range puts {
			if got[i].Load() < int32(watchers) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(5 * time.Second); !allDelivered() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	stopped.Lock()
	closed = true
	stopped.Unlock()
	cancel()

	var delivered, lost int64
	var all []time.Duration
	for i := range puts {
		k := int64(got[i].Load())
		delivered += k
		lost += max(0, int64(watchers)-k)
	}
	for _, l := range lat {
		all = append(all, l...)
	}
	r := result{ops: delivered, errs: putErrs + bad.Load(), elapsed: elapsed}
	r.p50, r.p99 = percentiles(all)
	f := figure{result: r, lost: lost, note: fmt.Sprintf("%d puts", puts)}
	failMu.Lock()
	defer failMu.Unlock()
	if failErr != nil {
		f.note += "; " + failErr.Error()
	}
	return f
}
