package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// -workload fleet runs a service's fleet the way coordkit means it to run:
// 3 voters and N observers, each a process of cmd/coordkit on
// 127.0.0.1, the observers started together and admitted through
// --join-seeds. For each N it measures the join, the idle cost of every
// process, a paced write load watched from every observer, closed-loop
// throughput, the reaping of killed observers, and a leader failure.
// coordkit only.

// fleetConfig scales -workload fleet.
type fleetConfig struct {
	observers []int         // fleet sizes, one run each
	duration  time.Duration // the paced load's measured window
	rate      int           // paced writes per second
	valueSize int
	closed    time.Duration // the closed-loop window
	clients   int           // closed-loop clients
	kill      int           // observers killed with SIGKILL
	grace     time.Duration // --observer-grace-period of the voters
	idle      time.Duration // idle window
	startups  int           // start-ups measured of each kind; 0 for none
	memberBin string
	progress  io.Writer
}

func defaultFleetConfig() fleetConfig {
	return fleetConfig{observers: []int{0, 10, 25, 50, 100}, duration: 20 * time.Second, rate: 200, valueSize: 256,
		closed: 10 * time.Second, clients: 32, kill: 10, grace: 20 * time.Second, idle: 20 * time.Second, startups: 10, progress: io.Discard}
}

const (
	// fleetJoinTimeout bounds the wait for every observer to be ready.
	fleetJoinTimeout = 3 * time.Minute
	// fleetSettle: after the join, the fleet is left alone this long
	// before the idle window, so that catching up is not counted as idle.
	fleetSettle = 5 * time.Second
	// fleetDrain bounds the wait for the watchers to receive the last
	// writes of the paced load.
	fleetDrain = 15 * time.Second
	// fleetElection is the members' election timeout (the default).
	fleetElection = time.Second
)

// dist is the distribution of one figure over a set of processes or events.
type dist struct{ p50, p99, max float64 }

func distOf(xs []float64) dist {
	if len(xs) == 0 {
		return dist{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	q := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return dist{p50: q(0.5), p99: q(0.99), max: s[len(s)-1]}
}

// fleetRow is the outcome for one fleet size.
type fleetRow struct {
	observers int
	leader    string

	// Join: from starting every observer at once to each printing ready.
	joined           int
	joinFailures     []string
	joinP50, joinAll time.Duration

	// Idle, in % of one core, and RSS in KiB.
	idleLeader, idleFollowerMax float64
	idleObs                     dist
	rssLeaderIdle               int64
	rssObsIdle                  dist
	heapLeaderIdle              int64 // bytes, HeapInuse after a forced GC

	// Paced load.
	offered, acked, errs, skipped int64
	firstErr                      error
	window                        time.Duration
	cpuUser, cpuSys               time.Duration // the leader's, over the window
	machineBusy                   float64
	propagation                   dist // ms, from a put's acknowledgement to its event on every observer
	lost, reordered               int64
	watched                       int // puts whose propagation was measured
	rssLeaderBusy                 int64
	rssObsBusy                    dist
	heapLeaderBusy                int64

	// Closed loop.
	closedOps float64

	// SIGKILLed observers: seconds from the kill to the removal of each.
	killed    int
	removal   dist
	notRemove int
	reapTicks uint64
	reapMean  time.Duration

	// SIGKILLed leader.
	resumeAfter, followAfter time.Duration
	notFollowing             int

	notes []string
}

func (r fleetRow) cpuPerWrite() (user, sys time.Duration) {
	if r.acked <= 0 {
		return 0, 0
	}
	return r.cpuUser / time.Duration(r.acked), r.cpuSys / time.Duration(r.acked)
}

// fleetWorkload measures start-up (cfg.startups of each kind), then runs
// one fleet per size in cfg.observers, and writes the tables to out; a
// fleet that fails ends the run with the rows measured before it written.
func fleetWorkload(cfg fleetConfig, out io.Writer, svg io.Writer) (rows []fleetRow, st startupResult, err error) {
	if cfg.progress == nil {
		cfg.progress = io.Discard
	}
	if cfg.rate <= 0 || cfg.duration <= 0 || len(cfg.observers) == 0 || cfg.clients <= 0 {
		return nil, st, fmt.Errorf("fleet: need a positive rate, duration and clients, and at least one fleet size")
	}
	bin, cleanup, err := ensureMember(cfg.memberBin, "fleet", cfg.progress)
	if err != nil {
		return nil, st, err
	}
	defer cleanup()
	version := memberVersion(bin, cfg.memberBin == "")
	// Start-up first, on a machine no fleet loads yet.
	if cfg.startups > 0 {
		if st, err = measureStartup(cfg, bin); err != nil {
			return nil, st, fmt.Errorf("start-up: %w", err)
		}
	}
	for _, n := range cfg.observers {
		var row fleetRow
		row, err = runFleet(cfg, bin, n)
		if err != nil {
			err = fmt.Errorf("fleet of %d observers: %w", n, err)
			break
		}
		rows = append(rows, row)
	}
	writeFleet(out, cfg, rows, version)
	if cfg.startups > 0 {
		writeStartup(out, cfg, st)
	}
	if svg != nil && len(rows) > 0 {
		writeFleetSVG(svg, rows)
	}
	return rows, st, err
}

// runFleet starts 3 voters and n observers and takes every measurement.
func runFleet(cfg fleetConfig, bin string, n int) (row fleetRow, err error) {
	row.observers = n
	vs, err := startVoters(bin, "fleet", n, 2*n, "--observer-grace-period", cfg.grace.String())
	if err != nil {
		return row, err
	}
	defer vs.finish(&err)
	f, dir, addrs, voters, leader := vs.f, vs.f.dir, vs.addrs, vs.voters, vs.leader
	row.leader = leader.name

	// The join: every observer started at once.
	names := map[string]bool{}
	var obs []*memberProc
	t0 := time.Now()
	for i := range n {
		name := fmt.Sprintf("o%d", i+1)
		names[name] = true
		m, err := f.start(name, addrs[9+n+i], nil,
			"--name", name, "--data-dir", filepath.Join(dir, name),
			"--listen-peer-urls", "http://"+addrs[9+i], "--listen-client-urls", "http://"+addrs[9+n+i],
			"--initial-cluster-token", vs.token, "--initial-cluster-state", "existing", "--observer",
			"--join-seeds", strings.Join(vs.seeds, ","), "--cluster-secret-file", vs.secret)
		if err != nil {
			return row, err
		}
		obs = append(obs, m)
	}
	deadline := t0.Add(fleetJoinTimeout)
	var joinTimes []float64
	for _, m := range obs {
		if err := m.waitReady(deadline); err != nil {
			row.joinFailures = append(row.joinFailures, err.Error())
			continue
		}
		joinTimes = append(joinTimes, m.readyAt.Sub(t0).Seconds())
	}
	row.joined = len(joinTimes)
	if d := distOf(joinTimes); n > 0 {
		row.joinP50, row.joinAll = time.Duration(d.p50*1e9), time.Duration(d.max*1e9)
	}
	if len(row.joinFailures) > 0 {
		return row, fmt.Errorf("%d of %d observers did not join: %s", len(row.joinFailures), n, row.joinFailures[0])
	}
	if err := f.waitObservers(leader, names, time.Now().Add(peersObserversTimeout(n))); err != nil {
		return row, err
	}
	fmt.Fprintf(cfg.progress, "fleet %d: leader %s, all observers ready %s after they started (p50 %s)\n",
		n, leader.name, row.joinAll.Round(10*time.Millisecond), row.joinP50.Round(10*time.Millisecond))

	// Idle.
	time.Sleep(fleetSettle)
	if err := row.measureIdle(f, cfg, leader, voters, obs); err != nil {
		return row, err
	}
	fmt.Fprintf(cfg.progress, "fleet %d: idle leader %.2f%%, observers p50 %.2f%% max %.2f%% of a core; observer RSS p50 %s\n",
		n, row.idleLeader, row.idleObs.p50, row.idleObs.max, mib(int64(row.rssObsIdle.p50)))

	// Paced writes, watched from every observer.
	if err := row.measurePaced(f, cfg, leader, voters, obs); err != nil {
		return row, err
	}
	u, s := row.cpuPerWrite()
	fmt.Fprintf(cfg.progress, "fleet %d: %d writes acknowledged, leader CPU/write %s user + %s sys, propagation p50 %.1f p99 %.1f max %.1f ms, %d lost\n",
		n, row.acked, u, s, row.propagation.p50, row.propagation.p99, row.propagation.max, row.lost)

	// Closed loop through the voters.
	row.closedOps = closedLoop(f, cfg, voters)
	fmt.Fprintf(cfg.progress, "fleet %d: closed loop %.0f writes/s\n", n, row.closedOps)

	// The leader killed under the paced load.
	if err := row.measureLeaderKill(f, cfg, leader, voters, obs); err != nil {
		return row, err
	}
	fmt.Fprintf(cfg.progress, "fleet %d: leader killed: writes resumed after %s, every observer follows after %s\n",
		n, row.resumeAfter.Round(time.Millisecond), row.followAfter.Round(time.Millisecond))

	// Observers killed; the new leader reaps them.
	if k := min(cfg.kill, n); k > 0 {
		others := slices.DeleteFunc(slices.Clone(voters), func(m *memberProc) bool { return m == leader })
		now, err := f.findLeader(others, time.Now().Add(peersVotersTimeout))
		if err != nil {
			return row, err
		}
		if err := row.measureReap(f, cfg, now, obs[:k]); err != nil {
			return row, err
		}
		fmt.Fprintf(cfg.progress, "fleet %d: %d observers killed, removed after p50 %.1f s, max %.1f s (%d not removed)\n",
			n, k, row.removal.p50, row.removal.max, row.notRemove)
	}
	for _, m := range f.procs {
		select {
		case <-m.exited:
			if m != leader && !m.killed.Load() {
				row.notes = append(row.notes, fmt.Sprintf("%s exited during the run (%v): %s", m.name, m.err, m.logTail(3)))
			}
		default:
		}
	}
	return row, nil
}

// measureIdle reads every process's CPU over cfg.idle, and their memory.
func (r *fleetRow) measureIdle(f *fleet, cfg fleetConfig, leader *memberProc, voters, obs []*memberProc) error {
	procs := append(slices.Clone(voters), obs...)
	c0 := make([]time.Duration, len(procs))
	for i, m := range procs {
		u, s, err := procCPUSplit(m.cmd.Process.Pid)
		if err != nil {
			return err
		}
		c0[i] = u + s
	}
	w0 := time.Now()
	time.Sleep(cfg.idle)
	window := time.Since(w0)
	var obsCPU []float64
	for i, m := range procs {
		u, s, err := procCPUSplit(m.cmd.Process.Pid)
		if err != nil {
			return err
		}
		pct := 100 * (u + s - c0[i]).Seconds() / window.Seconds()
		switch {
		case m == leader:
			r.idleLeader = pct
		case i < len(voters):
			r.idleFollowerMax = max(r.idleFollowerMax, pct)
		default:
			obsCPU = append(obsCPU, pct)
		}
	}
	r.idleObs = distOf(obsCPU)
	var err error
	if r.rssObsIdle, err = rssOf(obs); err != nil {
		return err
	}
	ls, err := f.sample(leader)
	if err != nil {
		return err
	}
	r.rssLeaderIdle, r.heapLeaderIdle = ls.rss, ls.heapInuse
	return nil
}

// rssOf returns the distribution of the processes' VmRSS, in KiB.
func rssOf(ms []*memberProc) (dist, error) {
	var xs []float64
	for _, m := range ms {
		rss, _, err := procMemStatus(strconv.Itoa(m.cmd.Process.Pid))
		if err != nil {
			return dist{}, err
		}
		xs = append(xs, float64(rss))
	}
	return distOf(xs), nil
}

// measurePaced runs the paced load through the voters while a watcher on
// every observer records when each revision arrives.
func (r *fleetRow) measurePaced(f *fleet, cfg fleetConfig, leader *memberProc, voters, obs []*memberProc) error {
	ws, err := startWatchers(f, obs, "/fleet/")
	if err != nil {
		return err
	}
	defer ws.close()
	load := startFleetLoad(f.http, clientsOf(voters), cfg.rate, cfg.valueSize, "/fleet/k")
	defer load.end()
	time.Sleep(min(2*time.Second, cfg.duration/5))
	pid := leader.cmd.Process.Pid
	u0, s0, err := procCPUSplit(pid)
	if err != nil {
		return err
	}
	m0, err := machineCPU()
	if err != nil {
		return err
	}
	o0, a0, e0, k0 := load.offered.Load(), load.acked.Load(), load.errs.n.Load(), load.skipped.Load()
	w0 := time.Now()
	time.Sleep(cfg.duration)
	u1, s1, err := procCPUSplit(pid)
	if err != nil {
		return err
	}
	r.window = time.Since(w0)
	m1, err := machineCPU()
	if err != nil {
		return err
	}
	r.machineBusy, _ = m1.since(m0)
	r.offered, r.acked, r.errs, r.skipped = load.offered.Load()-o0, load.acked.Load()-a0, load.errs.n.Load()-e0, load.skipped.Load()-k0
	r.cpuUser, r.cpuSys = u1-u0, s1-s0
	w1 := time.Now()
	if r.rssObsBusy, err = rssOf(obs); err != nil {
		return err
	}
	ls, err := f.sample(leader)
	if err != nil {
		return err
	}
	r.rssLeaderBusy, r.heapLeaderBusy = ls.rss, ls.heapInuse
	load.end()
	if load.errs.n.Load() > 0 {
		r.firstErr = load.errs.first
	}

	// The puts acknowledged in the window, by revision.
	acks := load.acks(w0, w1)
	if len(obs) == 0 || len(acks) == 0 {
		return nil
	}
	revs := make([]int64, 0, len(acks))
	for rev := range acks {
		revs = append(revs, rev)
	}
	slices.Sort(revs)
	last := revs[len(revs)-1]
	drain := time.Now().Add(fleetDrain)
	for !ws.allPast(last) && time.Now().Before(drain) {
		time.Sleep(50 * time.Millisecond)
	}
	var lat []float64
	for _, rev := range revs {
		var latest time.Time
		complete := true
		for _, w := range ws.w {
			at, ok := w.arrival(rev)
			if !ok {
				r.lost++
				complete = false
				continue
			}
			if at.After(latest) {
				latest = at
			}
		}
		if complete {
			lat = append(lat, max(0, latest.Sub(acks[rev]).Seconds()*1000))
		}
	}
	r.watched = len(lat)
	r.propagation = distOf(lat)
	for _, w := range ws.w {
		r.reordered += w.reordered.Load()
		if err := w.failure(); err != nil {
			r.notes = append(r.notes, fmt.Sprintf("watcher on %s: %v", w.m.name, err))
		}
	}
	return nil
}

// closedLoop puts from cfg.clients clients, spread over the voters, as fast
// as they are answered, and returns the writes acknowledged per second.
func closedLoop(f *fleet, cfg fleetConfig, voters []*memberProc) float64 {
	value := bytes.Repeat([]byte("v"), cfg.valueSize)
	urls := clientsOf(voters)
	var acked atomic.Int64
	var counting atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range cfg.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := httpPutRev(f.http, urls[c%len(urls)], fmt.Sprintf("/closed/c%d/k%d", c, i%100), value); err == nil && counting.Load() {
					acked.Add(1)
				}
			}
		}()
	}
	time.Sleep(time.Second)
	counting.Store(true)
	t0 := time.Now()
	time.Sleep(cfg.closed)
	counting.Store(false)
	elapsed := time.Since(t0)
	close(stop)
	wg.Wait()
	return float64(acked.Load()) / elapsed.Seconds()
}

// measureReap kills the observers with SIGKILL and waits for the leader to
// remove each from the membership.
func (r *fleetRow) measureReap(f *fleet, cfg fleetConfig, leader *memberProc, victims []*memberProc) error {
	ticks0, sum0, err := reaperMetrics(f, leader)
	if err != nil {
		return err
	}
	gone := map[string]time.Duration{}
	t0 := time.Now()
	for _, m := range victims {
		m.killed.Store(true)
		m.cmd.Process.Kill()
	}
	r.killed = len(victims)
	deadline := t0.Add(cfg.grace + time.Minute)
	for len(gone) < len(victims) && time.Now().Before(deadline) {
		var ms peersMembers
		if err := f.getJSON(leader, "/v1/members", &ms); err == nil {
			listed := map[string]bool{}
			for _, mb := range ms.Members {
				listed[mb.Name] = true
			}
			for _, m := range victims {
				if _, done := gone[m.name]; !done && !listed[m.name] {
					gone[m.name] = time.Since(t0)
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	var secs []float64
	for _, d := range gone {
		secs = append(secs, d.Seconds())
	}
	r.removal = distOf(secs)
	r.notRemove = len(victims) - len(gone)
	ticks1, sum1, err := reaperMetrics(f, leader)
	if err != nil {
		return err
	}
	if ticks1 > ticks0 {
		r.reapTicks = ticks1 - ticks0
		r.reapMean = time.Duration((sum1 - sum0) / float64(ticks1-ticks0) * 1e9)
	}
	return nil
}

// reaperMetrics reads coordkit_reaper_tick_seconds (count and sum) from the
// member's /metrics.
func reaperMetrics(f *fleet, m *memberProc) (count uint64, sum float64, err error) {
	b, err := f.getBody(m, "/metrics")
	if err != nil {
		return 0, 0, err
	}
	found := 0
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "coordkit_reaper_tick_seconds_count"); ok {
			count, err = strconv.ParseUint(strings.TrimSpace(lastField(v)), 10, 64)
			found++
		} else if v, ok := strings.CutPrefix(line, "coordkit_reaper_tick_seconds_sum"); ok {
			sum, err = strconv.ParseFloat(strings.TrimSpace(lastField(v)), 64)
			found++
		}
		if err != nil {
			return 0, 0, fmt.Errorf("/metrics: %q: %w", line, err)
		}
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("/metrics of %s has no coordkit_reaper_tick_seconds", m.name)
	}
	return count, sum, nil
}

func lastField(s string) string {
	fs := strings.Fields(s)
	if len(fs) == 0 {
		return ""
	}
	return fs[len(fs)-1]
}

// measureLeaderKill kills the leader with SIGKILL under the paced load
// (sent to the other voters), and measures when writes are acknowledged
// again under a new term, and when every observer names the new leader.
func (r *fleetRow) measureLeaderKill(f *fleet, cfg fleetConfig, leader *memberProc, voters, obs []*memberProc) error {
	var others []*memberProc
	for _, v := range voters {
		if v != leader {
			others = append(others, v)
		}
	}
	var st peersStatus
	if err := f.getJSON(leader, "/v1/status", &st); err != nil {
		return err
	}
	if len(st.Shards) == 0 {
		return fmt.Errorf("no shard in the leader's status")
	}
	oldLeader := st.Shards[0].Leader
	load := startFleetLoad(f.http, clientsOf(others), cfg.rate, cfg.valueSize, "/failover/k")
	defer load.end()
	time.Sleep(2 * time.Second)
	var oldTerm int64
	for _, a := range load.acksSince(time.Time{}) {
		oldTerm = max(oldTerm, a.term)
	}
	if oldTerm == 0 {
		return fmt.Errorf("no write acknowledged before the leader was killed: %v", load.errs.first)
	}
	// Every observer is polled for the leader it names, from the kill on.
	followed := make([]time.Duration, len(obs))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	tk := time.Now()
	leader.killed.Store(true)
	leader.cmd.Process.Kill()
	for i, m := range obs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var st peersStatus
				if err := f.getJSON(m, "/v1/status", &st); err == nil && len(st.Shards) > 0 &&
					st.Shards[0].Leader != 0 && st.Shards[0].Leader != oldLeader {
					followed[i] = time.Since(tk)
					return
				}
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	deadline := tk.Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if a := firstAckAfter(load.acksSince(tk), oldTerm); !a.at.IsZero() {
			r.resumeAfter = a.at.Sub(tk)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.resumeAfter == 0 {
		return fmt.Errorf("no write acknowledged under a new term within 30 s of killing the leader: %v", load.errs.first)
	}
	waitDone := make(chan struct{})
	go func() { wg.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-time.After(time.Until(deadline)):
		close(stop)
		<-waitDone
	}
	for _, d := range followed {
		if d == 0 {
			r.notFollowing++
		}
		r.followAfter = max(r.followAfter, d)
	}
	return nil
}

func clientsOf(ms []*memberProc) []string {
	var out []string
	for _, m := range ms {
		out = append(out, "http://"+m.client+"/v1/kv/put")
	}
	return out
}

// ack is one acknowledged put.
type ack struct {
	rev, term int64
	at        time.Time
}

func firstAckAfter(as []ack, term int64) ack {
	var first ack
	for _, a := range as {
		if a.term > term && (first.at.IsZero() || a.at.Before(first.at)) {
			first = a
		}
	}
	return first
}

// fleetLoad is a pacedLoad (see startLoad) spread over several members
// that records every acknowledgement.
type fleetLoad struct {
	*pacedLoad
	mu  sync.Mutex
	log []ack
}

func startFleetLoad(c *http.Client, urls []string, rate, size int, prefix string) *fleetLoad {
	l := &fleetLoad{}
	value := bytes.Repeat([]byte("v"), size)
	l.pacedLoad = startPaced(rate, func(i int) error {
		h, err := httpPutRev(c, urls[i%len(urls)], fmt.Sprintf("%s%d", prefix, i%1000), value)
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.log = append(l.log, ack{rev: h.Revision, term: h.RaftTerm, at: time.Now()})
		l.mu.Unlock()
		return nil
	})
	return l
}

// acks returns the revisions acknowledged from t0 to t1, with their times.
func (l *fleetLoad) acks(t0, t1 time.Time) map[int64]time.Time {
	out := map[int64]time.Time{}
	for _, a := range l.acksSince(t0) {
		if !a.at.After(t1) {
			out[a.rev] = a.at
		}
	}
	return out
}

func (l *fleetLoad) acksSince(t0 time.Time) []ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []ack
	for _, a := range l.log {
		if !a.at.Before(t0) {
			out = append(out, a)
		}
	}
	return out
}

// putHeader is the part of a put's answer read here.
type putHeader struct {
	Revision int64 `json:"revision"`
	RaftTerm int64 `json:"raft_term"`
}

// httpPutRev is httpPut that returns the answer's header.
func httpPutRev(c *http.Client, url, key string, value []byte) (putHeader, error) {
	body, err := json.Marshal(struct {
		Key   []byte `json:"key"`
		Value []byte `json:"value"`
	}{[]byte(key), value})
	if err != nil {
		return putHeader{}, err
	}
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return putHeader{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return putHeader{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return putHeader{}, fmt.Errorf("put: %s: %s", resp.Status, strings.TrimSpace(lastLines(string(b), 1)))
	}
	var ans struct {
		Header putHeader `json:"header"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return putHeader{}, fmt.Errorf("put: %w", err)
	}
	return ans.Header, nil
}

// watchers is a watch stream on each observer.
type watchers struct {
	w      []*watcher
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// watcher follows one observer's watch stream and records when each
// revision arrived.
type watcher struct {
	m         *memberProc
	mu        sync.Mutex
	at        map[int64]time.Time
	last      int64
	reordered atomic.Int64
	err       error
}

func (w *watcher) arrival(rev int64) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.at[rev]
	return t, ok
}

func (w *watcher) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// startWatchers opens a watch of prefix on every member in ms, and returns
// once every one has answered that it is watching.
func startWatchers(f *fleet, ms []*memberProc, prefix string) (*watchers, error) {
	ctx, cancel := context.WithCancel(context.Background())
	ws := &watchers{cancel: cancel}
	body, _ := json.Marshal(struct {
		Key    []byte `json:"key"`
		Prefix bool   `json:"prefix"`
	}{[]byte(prefix), true})
	// Streams have no overall timeout: this client is for them only.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	created := make(chan error, len(ms))
	for _, m := range ms {
		w := &watcher{m: m, at: map[int64]time.Time{}}
		ws.w = append(ws.w, w)
		ws.done.Add(1)
		go func() {
			defer ws.done.Done()
			err := w.run(ctx, hc, body, created)
			if err != nil && ctx.Err() == nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
			}
		}()
	}
	deadline := time.After(30 * time.Second)
	for range ms {
		select {
		case err := <-created:
			if err != nil {
				ws.close()
				return nil, err
			}
		case <-deadline:
			ws.close()
			return nil, fmt.Errorf("watchers not created within 30 s")
		}
	}
	return ws, nil
}

func (w *watcher) run(ctx context.Context, hc *http.Client, body []byte, created chan<- error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+w.m.client+"/v1/watch", bytes.NewReader(body))
	if err != nil {
		created <- err
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		created <- fmt.Errorf("watch on %s: %w", w.m.name, err)
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		err := fmt.Errorf("watch on %s: %s: %s", w.m.name, resp.Status, b)
		created <- err
		return err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	first := true
	for sc.Scan() {
		now := time.Now()
		var line struct {
			Created bool `json:"created"`
			Events  []struct {
				KV struct {
					ModRevision int64 `json:"mod_revision"`
				} `json:"kv"`
			} `json:"events"`
			Error *struct {
				Code, Message string
			} `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("bad line: %w", err)
		}
		if line.Error != nil {
			return fmt.Errorf("stream ended: %s: %s", line.Error.Code, line.Error.Message)
		}
		if first && line.Created {
			first = false
			created <- nil
			continue
		}
		w.mu.Lock()
		for _, ev := range line.Events {
			rev := ev.KV.ModRevision
			if rev <= w.last {
				w.reordered.Add(1)
			}
			w.last = max(w.last, rev)
			if _, dup := w.at[rev]; !dup {
				w.at[rev] = now
			}
		}
		w.mu.Unlock()
	}
	if first {
		created <- fmt.Errorf("watch on %s ended before it was created", w.m.name)
	}
	return sc.Err()
}

// allPast reports whether every watcher has received revision rev or later.
func (ws *watchers) allPast(rev int64) bool {
	for _, w := range ws.w {
		w.mu.Lock()
		last := w.last
		w.mu.Unlock()
		if last < rev {
			return false
		}
	}
	return true
}

func (ws *watchers) close() {
	ws.cancel()
	ws.done.Wait()
}

// procCPUSplit returns the user and system CPU time of process pid so far.
func procCPUSplit(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	// state is field 3 of proc(5), utime 14 and stime 15.
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	tick := time.Second / time.Duration(clockTicks())
	return time.Duration(utime) * tick, time.Duration(stime) * tick, nil
}

// writeFleet prints the tables and the extrapolation.
func writeFleet(out io.Writer, cfg fleetConfig, rows []fleetRow, version string) {
	fmt.Fprintf(out, "A fleet: 3 voters and N observers, each a process of cmd/coordkit (%s) on 127.0.0.1; the observers started together, admitted through --join-seeds.\n", version)
	fmt.Fprintf(out, "One run on a shared %d-core machine: every member process and this one (its load and N watchers) share its cores.\n\n", runtime.NumCPU())
	var base *fleetRow
	for i := range rows {
		if rows[i].observers == 0 {
			base = &rows[i]
		}
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
	pct := func(x float64) string { return fmt.Sprintf("%.2f%%", x) }
	fmt.Fprintln(out, "Join and idle:")
	fmt.Fprintln(out)
	t := [][]string{{"observers", "all ready", "ready p50", "failures", "leader idle CPU", "follower idle CPU (max)", "observer idle CPU p50 / max",
		"leader RSS idle", "leader heap idle", "observer RSS idle p50 / max"}}
	// obsCell formats a figure of the observers, none in a fleet of 0.
	obsCell := func(r fleetRow, s string) string {
		if r.observers == 0 {
			return "–"
		}
		return s
	}
	for _, r := range rows {
		t = append(t, []string{strconv.Itoa(r.observers), secs(r.joinAll), secs(r.joinP50), strconv.Itoa(len(r.joinFailures)),
			pct(r.idleLeader), pct(r.idleFollowerMax), obsCell(r, pct(r.idleObs.p50)+" / "+pct(r.idleObs.max)),
			mib(r.rssLeaderIdle), fmtMiB(r.heapLeaderIdle), obsCell(r, mib(int64(r.rssObsIdle.p50))+" / "+mib(int64(r.rssObsIdle.max)))})
	}
	writeMarkdown(out, t)
	fmt.Fprintln(out)
	fmt.Fprintf(out, "Paced writes: %d B values at %d/s through the voters in turn, %s measured after a warm-up; a watcher on every observer:\n\n", cfg.valueSize, cfg.rate, cfg.duration)
	t = [][]string{{"observers", "writes/s", "leader CPU/write user + sys", "vs 0 observers", "propagation p50 / p99 / max", "lost", "leader RSS after", "observer RSS after p50 / max", "machine busy"}}
	for _, r := range rows {
		u, s := r.cpuPerWrite()
		ratio := "–"
		if base != nil && base.acked > 0 && r.acked > 0 {
			bu, bs := base.cpuPerWrite()
			ratio = fmt.Sprintf("%.2fx", float64(u+s)/float64(bu+bs))
		}
		prop, lost := "–", "–"
		if r.observers > 0 {
			prop = fmt.Sprintf("%.1f / %.1f / %.1f ms", r.propagation.p50, r.propagation.p99, r.propagation.max)
			lost = strconv.FormatInt(r.lost, 10)
		}
		t = append(t, []string{strconv.Itoa(r.observers), fmt.Sprintf("%.0f", float64(r.acked)/r.window.Seconds()),
			ms(u) + " + " + ms(s), ratio, prop, lost, mib(r.rssLeaderBusy), obsCell(r, mib(int64(r.rssObsBusy.p50))+" / "+mib(int64(r.rssObsBusy.max))),
			fmt.Sprintf("%.0f%%", 100*r.machineBusy)})
	}
	writeMarkdown(out, t)
	fmt.Fprintln(out)
	fmt.Fprintf(out, "Closed loop (%d clients through the voters; the observers apply every write on the same cores), SIGKILL of %d observers (grace period %s) and of the leader (election timeout %s):\n\n", cfg.clients, cfg.kill, cfg.grace, fleetElection)
	t = [][]string{{"observers", "closed-loop writes/s", "killed observers removed after p50 / max", "not removed", "reaper ticks", "reaper time per tick", "writes resume after", "every observer follows after"}}
	for _, r := range rows {
		rem, ticks, per := "–", "–", "–"
		if r.killed > 0 {
			rem = fmt.Sprintf("%.1f / %.1f s", r.removal.p50, r.removal.max)
			ticks = strconv.FormatUint(r.reapTicks, 10)
			per = fmt.Sprintf("%.2f ms", float64(r.reapMean)/1e6)
		}
		follow := "–"
		if r.observers > 0 {
			follow = r.followAfter.Round(time.Millisecond).String()
			if r.notFollowing > 0 {
				follow += fmt.Sprintf(" (%d never)", r.notFollowing)
			}
		}
		t = append(t, []string{strconv.Itoa(r.observers), fmt.Sprintf("%.0f", r.closedOps), rem, strconv.Itoa(r.notRemove), ticks, per,
			r.resumeAfter.Round(time.Millisecond).String(), follow})
	}
	writeMarkdown(out, t)
	fmt.Fprintln(out)
	fmt.Fprintln(out, "- all ready: from starting every observer at once to the last one printing \"member NAME ready\" (Open returned and Ready succeeded).")
	fmt.Fprintf(out, "- idle CPU: utime+stime (/proc/PID/stat) over %s with nothing written, %s after the join, in %% of one core. RSS: VmRSS. heap: HeapInuse right after a forced GC.\n", cfg.idle, fleetSettle)
	fmt.Fprintln(out, "- leader CPU/write: the leader's utime and stime over the window divided by the writes acknowledged in it.")
	fmt.Fprintln(out, "- propagation: for each put acknowledged in the window, from its acknowledgement (HTTP answer received here) to the moment the last observer's watch stream delivered it here; lost: (put, observer) pairs never delivered.")
	fmt.Fprintln(out, "- reaper time per tick: coordkit_reaper_tick_seconds on the leader over the wait for the removals (wall time of one pass over the membership).")
	fmt.Fprintln(out, "- writes resume: from the SIGKILL to the first put acknowledged under a higher Raft term; every observer follows: until the last observer's /v1/status names a new leader (polled every 50 ms).")
	for _, r := range rows {
		if want := float64(cfg.rate) * r.window.Seconds(); float64(r.acked) < 0.95*want {
			fmt.Fprintf(out, "- %d observers: %.0f writes/s acknowledged of the %d/s offered (machine %.0f%% busy)\n",
				r.observers, float64(r.acked)/r.window.Seconds(), cfg.rate, 100*r.machineBusy)
		}
		if r.firstErr != nil {
			fmt.Fprintf(out, "- %d observers: %d put errors in the window, the first: %v\n", r.observers, r.errs, r.firstErr)
		}
		if r.reordered > 0 {
			fmt.Fprintf(out, "- %d observers: %d events arrived out of revision order\n", r.observers, r.reordered)
		}
		for _, n := range r.notes {
			fmt.Fprintf(out, "- %d observers: %s\n", r.observers, n)
		}
	}
	writeExtrapolation(out, cfg, rows, base)
}

func secs(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// writeExtrapolation scales the per-observer costs measured at the largest
// fleet to 1,000 instances, on paper.
func writeExtrapolation(out io.Writer, cfg fleetConfig, rows []fleetRow, base *fleetRow) {
	if base == nil || len(rows) < 2 {
		return
	}
	top := rows[len(rows)-1]
	n := float64(top.observers)
	if n == 0 || top.acked == 0 || base.acked == 0 {
		return
	}
	const target = 997 // 1,000 instances: 3 voters and 997 observers
	bu, bs := base.cpuPerWrite()
	u, s := top.cpuPerWrite()
	cpuPerObs := float64(u+s-bu-bs) / n // ns of leader CPU per write per observer
	idlePerObs := (top.idleLeader - base.idleLeader) / n
	memPerObs := float64(top.rssLeaderBusy-base.rssLeaderBusy) / n // KiB
	fmt.Fprintln(out)
	fmt.Fprintf(out, "On paper, 1,000 instances (3 voters, %d observers), from the per-observer slopes between 0 and %d observers:\n", target, top.observers)
	if cpuPerObs > 0 {
		fmt.Fprintf(out, "- leader CPU per write: %.2f ms + %.1f µs x %d = %.2f ms, so at most %.0f writes/s before the leader's writes alone fill one core;\n",
			float64(bu+bs)/1e6, cpuPerObs/1e3, target, (float64(bu+bs)+cpuPerObs*target)/1e6, 1e9/(float64(bu+bs)+cpuPerObs*target))
	} else {
		fmt.Fprintf(out, "- leader CPU per write: no growth with the fleet measured in this run (%.1f µs per observer): noise exceeds it;\n", cpuPerObs/1e3)
	}
	fmt.Fprintf(out, "- leader idle CPU: %.2f%% + %.4f%% x %d = %.1f%% of a core;\n", base.idleLeader, idlePerObs, target, base.idleLeader+idlePerObs*target)
	fmt.Fprintf(out, "- leader RSS under load: %s + %.0f KiB x %d = %s;\n", mib(base.rssLeaderBusy), memPerObs, target, mib(base.rssLeaderBusy+int64(memPerObs*target)))
	if top.observers > 0 && top.joinAll > 0 {
		fmt.Fprintf(out, "- join: %d observers were all ready after %s, %.0f ms per observer; %d at that pace: %.0f s;\n",
			top.observers, secs(top.joinAll), top.joinAll.Seconds()*1000/n, target, top.joinAll.Seconds()/n*target)
	}
	fmt.Fprintf(out, "- the write stream to the observers: %d B values x %d writes/s x %d = %.1f MB/s out of the leader, before framing.\n",
		cfg.valueSize, cfg.rate, target, float64(cfg.valueSize*cfg.rate*target)/1e6)
}

// writeFleetSVG draws the leader's CPU per write and the propagation p99
// against the fleet size.
func writeFleetSVG(w io.Writer, rows []fleetRow) {
	const width, height, left, right, top, bottom = 640, 320, 60, 60, 30, 50
	maxN := 1
	var maxCPU, maxP99 float64
	for _, r := range rows {
		maxN = max(maxN, r.observers)
		u, s := r.cpuPerWrite()
		maxCPU = max(maxCPU, float64(u+s)/1e6)
		maxP99 = max(maxP99, r.propagation.p99)
	}
	maxCPU, maxP99 = niceCeil(maxCPU), niceCeil(maxP99)
	x := func(n int) float64 { return left + float64(n)/float64(maxN)*(width-left-right) }
	y := func(v, top_ float64) float64 { return height - bottom - v/top_*(height-top-bottom) }
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(w, `<text x="%d" y="18" font-size="14">coordkit fleet: leader CPU per write and propagation p99, by observers</text>`+"\n", left)
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, height-bottom, width-right, height-bottom)
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#1f77b4"/>`+"\n", left, top, left, height-bottom)
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#d62728"/>`+"\n", width-right, top, width-right, height-bottom)
	for i := 0; i <= 4; i++ {
		f := float64(i) / 4
		fmt.Fprintf(w, `<text x="%d" y="%.0f" text-anchor="end" fill="#1f77b4">%.2f</text>`+"\n", left-4, y(f*maxCPU, maxCPU)+4, f*maxCPU)
		fmt.Fprintf(w, `<text x="%d" y="%.0f" fill="#d62728">%.0f</text>`+"\n", width-right+4, y(f*maxP99, maxP99)+4, f*maxP99)
	}
	for _, r := range rows {
		fmt.Fprintf(w, `<text x="%.0f" y="%d" text-anchor="middle">%d</text>`+"\n", x(r.observers), height-bottom+16, r.observers)
	}
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle">observers</text>`+"\n", (width)/2, height-10)
	fmt.Fprintf(w, `<text x="%d" y="%d" fill="#1f77b4">leader CPU per write (ms)</text>`+"\n", left, top+12)
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="end" fill="#d62728">propagation p99 (ms)</text>`+"\n", width-right, top+12)
	line := func(color string, val func(fleetRow) (float64, bool), top_ float64) {
		var pts []string
		for _, r := range rows {
			if v, ok := val(r); ok {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(r.observers), y(v, top_)))
				fmt.Fprintf(w, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(r.observers), y(v, top_), color)
			}
		}
		fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), color)
	}
	line("#1f77b4", func(r fleetRow) (float64, bool) { u, s := r.cpuPerWrite(); return float64(u+s) / 1e6, r.acked > 0 }, maxCPU)
	line("#d62728", func(r fleetRow) (float64, bool) { return r.propagation.p99, r.observers > 0 && r.watched > 0 }, maxP99)
	fmt.Fprintln(w, "</svg>")
}

// niceCeil rounds x up to 1, 2 or 5 times a power of ten.
func niceCeil(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := 1.0
	for p*10 <= x {
		p *= 10
	}
	for p > x {
		p /= 10
	}
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}
