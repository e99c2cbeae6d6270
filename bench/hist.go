package main

import (
	"math/bits"
	"time"
)

// histSubBits sets the histogram's precision: a latency is bucketed by its
// highest set bit and the histSubBits bits below it, so a bucket's width is
// under 1/64 of its value.
const histSubBits = 6

// hist is a log-linear latency histogram in nanoseconds: recording costs
// no allocation, so the harness stays cheap next to operations served from
// memory in a microsecond. Not safe for concurrent use.
type hist struct {
	counts [64 << histSubBits]int64
	n      int64
}

func histBucket(ns int64) int {
	if ns < 1<<histSubBits {
		return int(max(ns, 0))
	}
	shift := bits.Len64(uint64(ns)) - 1 - histSubBits
	return (shift+1)<<histSubBits + int(ns>>shift) - 1<<histSubBits
}

// histValue returns the middle of bucket i.
func histValue(i int) int64 {
	if i < 1<<histSubBits {
		return int64(i)
	}
	shift := i>>histSubBits - 1
	low := int64(1<<histSubBits+i&(1<<histSubBits-1)) << shift
	return low + int64(1)<<shift/2
}

func (h *hist) add(d time.Duration) {
	h.counts[histBucket(int64(d))]++
	h.n++
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the value at rank floor(q*n) in sorted order, within the
// precision of its bucket; 0 for an empty histogram.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(q * float64(h.n))
	var cum int64
	for i, c := range h.counts {
		cum += c
		if cum > rank {
			return time.Duration(histValue(i))
		}
	}
	return time.Duration(histValue(len(h.counts) - 1))
}
