package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// params scales the workloads: the command runs the defaults, the tests much
// smaller ones.
type params struct {
	duration time.Duration // measured time of each timed case
	watchers int           // watches in watch-10k
	leases   int           // leases in lease-10k
	idle     time.Duration // how long a child process idles before its RSS is read
}

func defaultParams() params {
	return params{duration: 3 * time.Second, watchers: 10000, leases: 10000, idle: 5 * time.Second}
}

// metric is what a workload's ratio column compares.
type metric int

const (
	metricOps metric = iota // operations per second: higher is better
	metricP50               // median latency: lower is better
	metricP99               // 99th percentile latency: lower is better
	metricRSS               // resident memory per member: lower is better
)

func (m metric) String() string {
	return [...]string{"ops/s", "p50", "p99", "RSS"}[m]
}

// figure is one system's outcome on one workload.
type figure struct {
	result
	na   string // set when the system has no figure for the workload, says why
	err  error  // the workload failed
	lost int64  // watch events never delivered
	mem  memory // memory rows
	note string // listed under the table
}

// memory is a child process's memory, in KiB.
type memory struct {
	perMember int64  // (RSS or peak RSS - base) / members: what one member adds
	process   int64  // the process's RSS, or its peak (VmHWM)
	base      int64  // the process's RSS before the cluster started
	what      string // "RSS" or "peak"
}

// value returns the figure's number for m, and false when there is none.
func (f figure) value(m metric) (float64, bool) {
	if f.na != "" || f.err != nil {
		return 0, false
	}
	switch m {
	case metricOps:
		return f.opsPerSec(), f.ops > 0
	case metricP50:
		return f.p50.Seconds(), f.p50 > 0
	case metricP99:
		return f.p99.Seconds(), f.p99 > 0
	case metricRSS:
		return float64(f.mem.perMember), f.mem.perMember > 0
	}
	return 0, false
}

// workload is one benchmark case, run against each system in turn: body
// against a running cluster of `voters` members in this process, or child,
// which measures memory in a child process.
type workload struct {
	name   string
	voters int
	metric metric
	desc   string
	na     map[string]string // systems with no figure here, and why
	body   func(p params, s system) figure
	child  func(p params, kind string) figure
}

// run runs w against a fresh cluster of kind, stopped afterwards.
func (w workload) run(p params, kind string) figure {
	if w.child != nil {
		return w.child(p, kind)
	}
	s, err := startSystem(kind, w.voters)
	if err != nil {
		return figure{err: fmt.Errorf("starting %s: %w", kind, err)}
	}
	defer func() {
		s.close()
		runtime.GC()
		debug.FreeOSMemory()
	}()
	return w.body(p, s)
}

// workloads lists every case of `-workload all`, in the order they run:
// each in-process case at 3 voters, then at 1 (named with "-1v"), then the
// memory cases.
func workloads() []workload {
	out := allWorkloads()
	for i, w := range out {
		if !v3Workloads[strings.TrimSuffix(w.name, "-1v")] {
			na := map[string]string{sysV3: "n/a (coordkit-v3 runs put-256, get-lin and watch-1)"}
			for k, v := range w.na {
				na[k] = v
			}
			out[i].na = na
		}
	}
	return out
}

// allWorkloads is workloads before sysV3's n/a marks.
func allWorkloads() []workload {
	var out []workload
	for _, w := range clusterWorkloads() {
		w1 := w
		w1.name, w1.voters, w1.desc = w.name+"-1v", 1, w.name+" on a 1-member cluster"
		out = append(out, w, w1)
	}
	return append(out,
		workload{name: "idle-rss", voters: 3, metric: metricRSS, desc: "RSS a member adds: (RSS of a 3-member process after idling - its RSS before start) / 3, in a child process",
			child: func(p params, kind string) figure { return idleRSS(p, kind, 3) }},
		workload{name: "idle-rss-1v", voters: 1, metric: metricRSS, desc: "as idle-rss with 1 member",
			child: func(p params, kind string) figure { return idleRSS(p, kind, 1) }},
		workload{name: "put-256-hwm", voters: 3, metric: metricRSS, desc: "peak RSS a member adds: (VmHWM of a 3-member process after put-256 - its RSS before start) / 3",
			child: putPeakRSS},
	)
}

// clusterWorkloads lists the cases run against a cluster in this process,
// at 3 voters.
func clusterWorkloads() []workload {
	noTxn := map[string]string{sysRaw: "n/a (no txn)"}
	noWatch := map[string]string{sysRaw: "n/a (no watch)"}
	noLease := map[string]string{sysRaw: "n/a (no lease)"}
	noLock := map[string]string{sysRaw: "n/a (no lock)"}
	noRegistry := map[string]string{sysRaw: "n/a (no registry)"}
	noPubsub := map[string]string{sysRaw: "n/a (no pub/sub)"}
	return []workload{
		{name: "put-seq", voters: 3, metric: metricP50, desc: "sequential puts, 1 client, 16 B values, through each member in turn",
			body: func(p params, s system) figure { return putLoad(p, s, 1, 16) }},
		{name: "put-64", voters: 3, metric: metricOps, desc: "puts from 64 clients, 16 B values",
			body: func(p params, s system) figure { return putLoad(p, s, 64, 16) }},
		{name: "put-256", voters: 3, metric: metricOps, desc: "puts from 256 clients, 16 B values",
			body: func(p params, s system) figure { return putLoad(p, s, 256, 16) }},
		{name: "put-256-1k", voters: 3, metric: metricOps, desc: "puts from 256 clients, 1 KiB values",
			body: func(p params, s system) figure { return putLoad(p, s, 256, 1024) }},
		{name: "get-lin", voters: 3, metric: metricOps, desc: "linearizable gets from 64 clients over 1,000 keys (raw: SyncRead)",
			body: func(p params, s system) figure { return getLoad(p, s, false) }},
		{name: "get-ser", voters: 3, metric: metricOps, desc: "serializable gets from 64 clients (raw: StaleRead)",
			body: func(p params, s system) figure { return getLoad(p, s, true) }},
		{name: "txn-cas", voters: 3, metric: metricOps, desc: "64 clients, each compare-and-swapping its own key on ModRevision",
			na: noTxn, body: casLoad},
		{name: "watch-1", voters: 3, metric: metricP99, desc: "put on member 0 to event on member 1, 1 watcher",
			na: noWatch, body: func(p params, s system) figure { return watchLoad(p, s, 1) }},
		{name: "watch-10k", voters: 3, metric: metricP99, desc: "as watch-1 with 10,000 watchers of one key on member 1; ops = events delivered",
			na: noWatch, body: func(p params, s system) figure { return watchLoad(p, s, p.watchers) }},
		{name: "lease-10k", voters: 3, metric: metricOps, desc: "grant + one keep-alive for each of 10,000 leases, 64 clients",
			na: noLease, body: leaseLoad},
		{name: "lock-uncontended", voters: 3, metric: metricP50, desc: "lock+unlock, 1 client, through each member in turn",
			na: noLock, body: func(p params, s system) figure { return lockLoad(p, s, 1, false) }},
		{name: "lock-64", voters: 3, metric: metricOps, desc: "lock+unlock, 64 clients, each its own lock",
			na: noLock, body: func(p params, s system) figure { return lockLoad(p, s, 64, false) }},
		{name: "lock-contended-16", voters: 3, metric: metricOps, desc: "lock+unlock, 16 clients on one lock",
			na: noLock, body: func(p params, s system) figure { return lockLoad(p, s, 16, true) }},
		{name: "election-failover", voters: 3, metric: metricP50, desc: "leader resigns to the next candidate's Campaign returning, 2 candidates",
			na: map[string]string{sysRaw: "n/a (no election)"}, body: electionLoad},
		{name: "registry-register", voters: 3, metric: metricOps, desc: "register an instance in a session of its own, then deregister it, 64 clients (etcd: naming/endpoints)",
			na: noRegistry, body: registryLoad},
		{name: "registry-lookup", voters: 3, metric: metricOps, desc: "linearizable lookups of a service with 16 instances, 64 clients",
			na: noRegistry, body: lookupLoad},
		{name: "grpc-resolver", voters: 3, metric: metricP99, desc: "deregister an instance through member 0 to a gRPC resolver on member 1 handing gRPC a state without it (etcd: naming/resolver)",
			na: map[string]string{sysRaw: "n/a (no gRPC resolver)"}, body: resolverLoad},
		{name: "pubsub-publish", voters: 3, metric: metricOps, desc: "publish 16 B messages on one topic, 64 clients (etcd: a put of a new key under the topic)",
			na: noPubsub, body: publishLoad},
		{name: "pubsub-deliver", voters: 3, metric: metricP99, desc: "watch-1 over pub/sub: publish on member 0 to delivery on member 1 (etcd: a watch of the topic's prefix)",
			na: noPubsub, body: deliverLoad},
	}
}

// clientKey names key i of client c, 1,000 keys per client.
func clientKey(prefix string, c, i int) string {
	return prefix + strconv.Itoa(c) + "/" + strconv.Itoa(i%1000)
}

// memberFor is the member client c's op i goes through: c%n, except that a
// lone client goes through each member in turn. A lone client's latency
// depends on whether its member leads (a follower forwards to the leader
// and learns of the commit a message later: 0.15-0.2 ms more here), and
// which member wins the election is luck; taking every member in turn
// gives every system the same mix, one op in n on the leader.
func memberFor(clients, n, c, i int) int {
	if clients == 1 {
		return i % n
	}
	return c % n
}

// putLoad: clients put values of size bytes, client c through member
// memberFor(c, i).
func putLoad(p params, s system, clients, size int) figure {
	value := []byte(strings.Repeat("v", size))
	n := s.members()
	return figure{result: drive(clients, p.duration, func(ctx context.Context, c, i int) error {
		return s.put(ctx, memberFor(clients, n, c, i), clientKey("/bench/put/", c, i), value)
	})}
}

// getLoad fills 1,000 keys, then 64 clients read them.
func getLoad(p params, s system, serializable bool) figure {
	const keys = 1000
	n := s.members()
	value := []byte(strings.Repeat("v", 16))
	fill := driveCount(16, keys, func(ctx context.Context, c, i int) error {
		return s.put(ctx, i%n, "/bench/get/"+strconv.Itoa(i), value)
	})
	if fill.errs > 0 {
		return figure{err: fmt.Errorf("filling %d keys: %d errors, the first: %w", keys, fill.errs, fill.firstErr)}
	}
	return figure{result: drive(64, p.duration, func(ctx context.Context, c, i int) error {
		return s.get(ctx, c%n, "/bench/get/"+strconv.Itoa((c*31+i)%keys), serializable)
	})}
}

// errCASConflict: a client's CAS on its own key failed, which should not
// happen; counted as an error.
var errCASConflict = errors.New("cas: compare failed")

// casLoad: 64 clients, each CASing its own key from the ModRevision it last
// wrote.
func casLoad(p params, s system) figure {
	cs, ok := s.(casSystem)
	if !ok {
		return figure{na: "n/a (no txn)"}
	}
	const clients = 64
	n := s.members()
	value := []byte(strings.Repeat("v", 16))
	revs := make([]int64, clients) // revs[c] is owned by client c
	return figure{result: drive(clients, p.duration, func(ctx context.Context, c, i int) error {
		key := "/bench/cas/" + strconv.Itoa(c)
		rev, ok, err := cs.cas(ctx, c%n, key, revs[c], value)
		if err != nil {
			return err
		}
		if !ok { // first round, or a write whose outcome was unknown
			revs[c], err = cs.modRev(ctx, c%n, key)
			return errors.Join(errCASConflict, err)
		}
		revs[c] = rev
		return nil
	})}
}

// leaseLoad grants p.leases leases with a 60s TTL from 64 clients and
// renews each once.
func leaseLoad(p params, s system) figure {
	ls, ok := s.(leaseSystem)
	if !ok {
		return figure{na: "n/a (no lease)"}
	}
	n := s.members()
	return figure{result: driveCount(64, p.leases, func(ctx context.Context, c, i int) error {
		return ls.grantKeepAlive(ctx, c%n, 60*time.Second)
	})}
}
