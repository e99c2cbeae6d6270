package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The steady workload asks whether a member's memory grows with the number
// of writes or only with what it keeps: 256 clients overwrite a fixed set
// of keys (steadyKeysPerClient each, 16-byte values) on 3 members in one
// child process per system, in steadyPhases equal phases. After each phase
// the child collects garbage and reads its Go heap in use and its RSS;
// the figures are per member (less the process's before the cluster
// started, divided by 3). The key set is full within the first phase, so
// from then on a store that keeps only its live keys and a bounded history
// holds a flat heap.
const (
	steadyKeysPerClient = 64 // 16,384 keys in all
	steadyPhases        = 8
)

// steadyPhase is what a child reports after one phase.
type steadyPhase struct {
	writes int64 // acknowledged since the start
	// Per member: the Go heap in use, what the Go runtime holds from the
	// OS (heap spans in use or idle and not yet returned, stacks, its own
	// structures), and the RSS. RSS beyond the runtime's is memory
	// allocated outside Go (pebble's memtables and block cache, with cgo)
	// and the binary's pages.
	heapKiB, goKiB, rssKiB int64
}

// childSteady runs the steady workload on one system in this (child)
// process and prints a "CHILD-STEADY writes=N heap=KiB rss=KiB" line per
// phase.
func childSteady(kind string, d time.Duration) error {
	baseHeap, baseGo := heapInuse()
	baseRSS, _, err := memStatus()
	if err != nil {
		return err
	}
	s, err := startSystem(kind, 3)
	if err != nil {
		return err
	}
	defer s.close()
	value := []byte(strings.Repeat("v", 16))
	var writes atomic.Int64 // every acknowledged put, warm-up included
	for range steadyPhases {
		r := drive(256, d/steadyPhases, func(ctx context.Context, c, i int) error {
			err := s.put(ctx, c%3, "/bench/steady/"+strconv.Itoa(c)+"/"+strconv.Itoa(i%steadyKeysPerClient), value)
			if err == nil {
				writes.Add(1)
			}
			return err
		})
		if r.errs > 0 {
			return fmt.Errorf("%d puts failed, the first: %w", r.errs, r.firstErr)
		}
		heap, goHeld := heapInuse()
		rss, _, err := memStatus()
		if err != nil {
			return err
		}
		fmt.Printf("CHILD-STEADY writes=%d heap=%d go=%d rss=%d\n", writes.Load(), (heap-baseHeap)/3, (goHeld-baseGo)/3, (rss-baseRSS)/3)
	}
	return nil
}

// heapInuse collects garbage and returns the Go heap in use and what the
// Go runtime holds from the OS, in KiB.
func heapInuse() (heap, held int64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse >> 10), int64((ms.Sys - ms.HeapReleased) >> 10)
}

// steadyWorkload runs the steady workload on each system, each in a child
// process, and writes its table.
func steadyWorkload(d time.Duration, systems []string, w io.Writer) error {
	fmt.Fprintf(w, "## Memory under overwrites: 256 clients, %d keys, 16 B values, 3 members, %s in %d phases\n\n",
		256*steadyKeysPerClient, d, steadyPhases)
	fmt.Fprintln(w, "Per member, after a GC at the end of each phase (less the process's before the cluster started, / 3): the Go heap in use; what the Go runtime holds from the OS (heap in use or idle and not yet returned, stacks, its own structures); RSS, which adds memory allocated outside Go (pebble's, with cgo).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| system | phase | writes so far | Go heap in use | Go runtime | RSS |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	for _, kind := range systems {
		phases, err := spawnSteady(kind, d)
		if err != nil {
			return err
		}
		for i, ph := range phases {
			fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s |\n", kind, i+1, ph.writes, mib(ph.heapKiB), mib(ph.goKiB), mib(ph.rssKiB))
		}
		if n := len(phases); n >= 3 {
			fmt.Fprintf(w, "| %s | last / second | %.2fx | %.2fx | %.2fx | %.2fx |\n", kind,
				float64(phases[n-1].writes)/float64(phases[1].writes),
				float64(phases[n-1].heapKiB)/float64(phases[1].heapKiB),
				float64(phases[n-1].goKiB)/float64(phases[1].goKiB),
				float64(phases[n-1].rssKiB)/float64(phases[1].rssKiB))
		}
	}
	return nil
}

// spawnSteady runs childSteady in a child process and parses its phases.
func spawnSteady(kind string, d time.Duration) ([]steadyPhase, error) {
	spec := fmt.Sprintf("steady,%s,%s", kind, d)
	out, err := spawnOutput(spec)
	if err != nil {
		return nil, err
	}
	var phases []steadyPhase
	for line := range strings.Lines(out.stdout) {
		if strings.HasPrefix(line, "CHILD-STEADY ") {
			var ph steadyPhase
			if _, err := fmt.Sscanf(line, "CHILD-STEADY writes=%d heap=%d go=%d rss=%d", &ph.writes, &ph.heapKiB, &ph.goKiB, &ph.rssKiB); err != nil {
				return nil, err
			}
			phases = append(phases, ph)
		}
	}
	if len(phases) != steadyPhases {
		return nil, fmt.Errorf("child %s: %d phases reported: %s", spec, len(phases), lastLines(out.stderr, 5))
	}
	return phases, nil
}
