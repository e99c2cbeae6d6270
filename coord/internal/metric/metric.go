// Package metric holds the one instrument coord's parts share: a
// fixed-bucket latency histogram, cheap to observe from any goroutine and
// read as a cumulative snapshot. Package coord turns snapshots into its
// public Histogram.
package metric

import (
	"sync"
	"time"
)

// Bounds are the histogram's bucket bounds, in seconds: a local fsync
// (100µs) to a slow election (5s).
var Bounds = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// Histogram counts durations into Bounds. The zero value is ready; it is
// safe for concurrent use.
type Histogram struct {
	mu     sync.Mutex
	counts [16]uint64 // per bucket; the last is +Inf
	n      uint64
	sum    float64
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(Bounds) && s > Bounds[i] {
		i++
	}
	h.mu.Lock()
	h.counts[i]++
	h.n++
	h.sum += s
	h.mu.Unlock()
}

// Snapshot returns the cumulative counts: counts[i] observations were at
// most Bounds[i] seconds; n is every observation, sum their total.
func (h *Histogram) Snapshot() (counts []uint64, n uint64, sum float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	counts = make([]uint64, len(Bounds))
	var c uint64
	for i := range Bounds {
		c += h.counts[i]
		counts[i] = c
	}
	return counts, h.n, h.sum
}
