package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coordkit/coordkit/internal/freeport"
)

// -workload peers measures what each observer costs the Raft leader, the
// way a fleet runs: 3 voters and N observers, each member a process of
// cmd/coordkit on 127.0.0.1, observers admitted through --join-seeds.
// For each N it reads the leader's heap (right after a forced GC) idle and
// under a paced write load, and the leader process's CPU time per write
// acknowledged. coordkit only.

// peersConfig scales -workload peers.
type peersConfig struct {
	observers []int         // observer counts, one fleet each
	duration  time.Duration // measured load window
	rate      int           // writes per second, paced
	valueSize int           // bytes per value
	memberBin string        // a built cmd/coordkit, or "" to build one
	// profileDir, if set, receives the leader's CPU profile over each
	// measured window, as leader-cpu-N.pprof for N observers.
	profileDir string
	progress   io.Writer // progress lines
}

func defaultPeersConfig() peersConfig {
	return peersConfig{observers: []int{0, 10, 40}, duration: 20 * time.Second, rate: 200, valueSize: 256, progress: io.Discard}
}

// warmup is how long the load runs before the measured window.
func (c peersConfig) warmup() time.Duration { return min(2*time.Second, c.duration/5) }

// idleWindow is how long the leader's idle CPU is measured.
func (c peersConfig) idleWindow() time.Duration { return min(5*time.Second, c.duration/4) }

// Bounds on waiting for the fleet; polls end early when it is there.
const (
	peersVotersTimeout = 60 * time.Second
	peersPollEvery     = 100 * time.Millisecond
	// peersJoining: observers started and not yet ready at once, so that a
	// large fleet joins at a pace two shared cores keep up with.
	peersJoining = 4
	// peersSamples: heap samples per figure, the median kept.
	peersSamples = 3
)

// peersObserversTimeout bounds the wait for n observers to join.
func peersObserversTimeout(n int) time.Duration {
	return 60*time.Second + time.Duration(n)*3*time.Second
}

// leaderSample is the leader's memory at one moment.
type leaderSample struct {
	heapInuse  int64 // bytes, runtime.MemStats.HeapInuse right after a forced GC
	heapAlloc  int64 // bytes, HeapAlloc (live objects) at the same moment
	stackInuse int64 // bytes, StackInuse
	goroutines int64
	rss        int64 // KiB, VmRSS
}

// peersRow is the outcome for one observer count.
type peersRow struct {
	observers int
	joined    int // observers the leader listed as reachable members after the load
	leader    string
	joinTime  time.Duration // from the first observer's start to all listed
	idle      leaderSample
	busy      leaderSample
	// In the measured window:
	offered, acked, errs, skipped int64
	firstErr                      error
	cpu                           time.Duration // the leader's user+system CPU time
	window                        time.Duration
	machineBusy                   float64 // share of the machine's CPU time not idle or waiting for I/O
	machineIOWait                 float64 // share spent waiting for I/O
	// Before the load, with every observer joined:
	idleCPU, idleWindow time.Duration
	notes               []string
}

func (r peersRow) cpuPerWrite() time.Duration {
	if r.acked <= 0 {
		return 0
	}
	return r.cpu / time.Duration(r.acked)
}

// peersWorkload runs one fleet per observer count in cfg.observers, one
// after another, and writes the table to out. It returns the rows measured,
// and an error if a fleet failed (the rows before it are still written).
func peersWorkload(cfg peersConfig, out io.Writer) ([]peersRow, error) {
	if cfg.progress == nil {
		cfg.progress = io.Discard
	}
	if cfg.rate <= 0 || cfg.duration <= 0 || len(cfg.observers) == 0 {
		return nil, fmt.Errorf("peers: need a positive rate and duration and at least one observer count")
	}
	for _, n := range cfg.observers {
		if n < 0 {
			return nil, fmt.Errorf("peers: %d observers", n)
		}
	}
	bin, cleanup, err := ensureMember(cfg.memberBin, "peers", cfg.progress)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var rows []peersRow
	for _, n := range cfg.observers {
		var row peersRow
		row, err = runPeers(cfg, bin, n)
		if err != nil {
			err = fmt.Errorf("peers, %d observers: %w", n, err)
			break
		}
		rows = append(rows, row)
	}
	if len(rows) > 0 {
		writePeers(out, cfg, rows, memberVersion(bin, cfg.memberBin == ""))
	}
	return rows, err
}

// buildMember builds cmd/coordkit, a module of its own, into dir. It runs
// the go command in ../cmd/coordkit, so the current directory must be
// bench/ (as for go run . and go test).
func buildMember(dir string) (string, error) {
	bin, err := filepath.Abs(filepath.Join(dir, "member"))
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join("..", "cmd", "coordkit")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building cmd/coordkit (run from bench/, or pass -member-bin): %w: %s", err, out)
	}
	return bin, nil
}

// ensureMember returns bin, or, if it is empty, builds cmd/coordkit into
// a temporary directory that cleanup removes.
func ensureMember(bin, kind string, progress io.Writer) (_ string, cleanup func(), err error) {
	if bin != "" {
		return bin, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "coordkit-"+kind+"-bin-")
	if err != nil {
		return "", nil, err
	}
	fmt.Fprintf(progress, "%s: building cmd/coordkit\n", kind)
	if bin, err = buildMember(dir); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// memberVersion describes the member binary: the commit of the working
// tree it was built from when this run built it, else what the binary
// records.
func memberVersion(bin string, built bool) string {
	if built {
		rev, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
		if err != nil {
			return "built here, commit unknown"
		}
		v := "built from commit " + strings.TrimSpace(string(rev))
		if st, err := exec.Command("git", "status", "--porcelain").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			v += " with uncommitted changes"
		}
		return v
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return bin
	}
	v := bin + ", " + info.GoVersion
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" || s.Key == "vcs.modified" {
			v += ", " + s.Key + "=" + s.Value
		}
	}
	return v
}

// runPeers starts 3 voters and n observers, measures the leader, and stops
// them all. On failure the fleet's logs are kept and their directory named.
func runPeers(cfg peersConfig, bin string, n int) (row peersRow, err error) {
	row.observers = n
	t0 := time.Now()
	vs, err := startVoters(bin, "peers", n, n)
	if err != nil {
		return row, err
	}
	defer vs.finish(&err)
	f, dir, addrs, token, secret, seeds, voters, leader := vs.f, vs.f.dir, vs.addrs, vs.token, vs.secret, vs.seeds, vs.voters, vs.leader
	row.leader = leader.name
	fmt.Fprintf(cfg.progress, "peers: %d observers: voters ready in %s, leader %s\n", n, time.Since(t0).Round(100*time.Millisecond), leader.name)

	// Observers join through the voters' admission service, a few at a time.
	t1 := time.Now()
	deadline := t1.Add(peersObserversTimeout(n))
	names := map[string]bool{}
	joining := make(chan struct{}, peersJoining)
	joinErr := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		name := fmt.Sprintf("o%d", i+1)
		names[name] = true
		joining <- struct{}{}
		m, err := f.start(name, "", []string{"GOMAXPROCS=1"},
			"--name", name, "--data-dir", filepath.Join(dir, name),
			"--listen-peer-urls", "http://"+addrs[9+i], "--listen-client-urls", "",
			"--initial-cluster-token", token, "--initial-cluster-state", "existing", "--observer",
			"--join-seeds", strings.Join(seeds, ","), "--cluster-secret-file", secret)
		if err != nil {
			return row, err // the waits end as the fleet is killed
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.waitReady(deadline); err != nil {
				joinErr <- err
			}
			<-joining
		}()
	}
	wg.Wait()
	close(joinErr)
	var errs []error
	for err := range joinErr {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return row, err
	}
	if err := f.waitObservers(leader, names, deadline); err != nil {
		return row, err
	}
	row.joinTime = time.Since(t1)
	if n > 0 {
		fmt.Fprintf(cfg.progress, "peers: %d observers: all joined in %s\n", n, row.joinTime.Round(100*time.Millisecond))
	}

	// Idle: the leader's CPU with nothing to do but keep its followers and
	// observers, then its memory.
	pid := leader.cmd.Process.Pid
	cpu0, err := procCPU(pid)
	if err != nil {
		return row, err
	}
	w0 := time.Now()
	time.Sleep(cfg.idleWindow())
	cpu1, err := procCPU(pid)
	if err != nil {
		return row, err
	}
	row.idleCPU, row.idleWindow = cpu1-cpu0, time.Since(w0)
	if row.idle, err = f.sample(leader); err != nil {
		return row, fmt.Errorf("idle sample: %w", err)
	}

	load := startLoad(f.http, leader.client, cfg.rate, cfg.valueSize)
	defer load.end()
	time.Sleep(cfg.warmup())
	cpu0, err = procCPU(pid)
	if err != nil {
		return row, err
	}
	o0, a0, e0, s0 := load.offered.Load(), load.acked.Load(), load.errs.n.Load(), load.skipped.Load()
	m0, err := machineCPU()
	if err != nil {
		return row, err
	}
	w0 = time.Now()
	var profiled chan error
	if cfg.profileDir != "" {
		profiled = make(chan error, 1)
		go func() {
			profiled <- f.cpuProfile(leader, cfg.duration, filepath.Join(cfg.profileDir, fmt.Sprintf("leader-cpu-%d.pprof", n)))
		}()
	}
	time.Sleep(cfg.duration)
	cpu1, err = procCPU(pid)
	if err != nil {
		return row, err
	}
	row.window = time.Since(w0)
	m1, err := machineCPU()
	if err != nil {
		return row, err
	}
	row.machineBusy, row.machineIOWait = m1.since(m0)
	if profiled != nil {
		if err := <-profiled; err != nil {
			return row, fmt.Errorf("leader CPU profile: %w", err)
		}
	}
	row.offered, row.acked, row.errs, row.skipped = load.offered.Load()-o0, load.acked.Load()-a0, load.errs.n.Load()-e0, load.skipped.Load()-s0
	row.cpu = cpu1 - cpu0
	if row.busy, err = f.sample(leader); err != nil {
		return row, fmt.Errorf("busy sample: %w", err)
	}
	load.end()
	if load.errs.n.Load() > 0 {
		row.firstErr = load.errs.first
	}
	fmt.Fprintf(cfg.progress, "peers: %d observers: %d writes offered, %d acknowledged in %s, %d errors, leader CPU %s\n",
		n, row.offered, row.acked, row.window.Round(100*time.Millisecond), row.errs, row.cpu)

	// The figures are the leader's only if it led throughout, and are for n
	// observers only if they are all still there.
	if now, err := f.findLeader(voters, time.Now().Add(10*time.Second)); err != nil {
		row.notes = append(row.notes, fmt.Sprintf("no leader found after the load: %v", err))
	} else if now != leader {
		row.notes = append(row.notes, fmt.Sprintf("the leader moved from %s to %s during the run: the figures mix the two", leader.name, now.name))
	}
	if row.joined, err = f.reachableObservers(leader, names); err != nil {
		row.notes = append(row.notes, fmt.Sprintf("listing members after the load: %v", err))
	} else if row.joined != n {
		row.notes = append(row.notes, fmt.Sprintf("after the load the leader lists %d of the %d observers as reachable members", row.joined, n))
	}
	for _, m := range f.procs {
		select {
		case <-m.exited:
			row.notes = append(row.notes, fmt.Sprintf("%s exited during the run (%v): %s", m.name, m.err, m.logTail(3)))
		default:
		}
	}
	return row, nil
}

// voterSet is a fleet's 3 voters, started by startVoters.
type voterSet struct {
	f      *fleet
	secret string   // the cluster secret's file
	token  string   // the cluster token
	addrs  []string // 9 addresses of the voters (peer, client, admin), then those asked for
	seeds  []string // the voters' admin addresses
	voters []*memberProc
	leader *memberProc
}

// startVoters creates a fleet in a new temporary directory with a cluster
// secret, reserves 9 + extra loopback addresses, starts 3 voters with
// voterArgs added to their flags, and waits until they are ready and one
// of them leads. On success the caller must defer finish.
func startVoters(bin, kind string, n, extra int, voterArgs ...string) (vs *voterSet, err error) {
	dir, err := os.MkdirTemp("", "coordkit-"+kind+"-")
	if err != nil {
		return nil, err
	}
	vs = &voterSet{f: newFleet(dir, bin), secret: filepath.Join(dir, "secret"),
		token: fmt.Sprintf("%s-bench-%d-%d", kind, n, time.Now().UnixNano())}
	defer func() {
		if err != nil {
			vs.finish(&err)
		}
	}()
	if err := os.WriteFile(vs.secret, []byte(rand.Text()), 0o600); err != nil {
		return vs, err
	}
	if vs.addrs, err = freeport.Addrs(9 + extra); err != nil {
		return vs, err
	}
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("m%d=http://%s", i+1, vs.addrs[i]))
		vs.seeds = append(vs.seeds, vs.addrs[6+i])
	}
	for i := range 3 {
		name := fmt.Sprintf("m%d", i+1)
		m, err := vs.f.start(name, vs.addrs[3+i], nil, append([]string{
			"--name", name, "--data-dir", filepath.Join(dir, name),
			"--listen-peer-urls", "http://" + vs.addrs[i], "--listen-client-urls", "http://" + vs.addrs[3+i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-token", vs.token,
			"--initial-cluster-state", "new", "--cluster-secret-file", vs.secret,
			"--listen-admin-urls", vs.addrs[6+i], "--enable-pprof"}, voterArgs...)...)
		if err != nil {
			return vs, err
		}
		vs.voters = append(vs.voters, m)
	}
	deadline := time.Now().Add(peersVotersTimeout)
	for _, m := range vs.voters {
		if err := m.waitReady(deadline); err != nil {
			return vs, err
		}
	}
	vs.leader, err = vs.f.findLeader(vs.voters, time.Now().Add(peersVotersTimeout))
	return vs, err
}

// finish kills the fleet, and removes its directory unless *err is set,
// which it then makes name the directory, where the members' logs are.
func (vs *voterSet) finish(err *error) {
	vs.f.kill()
	if *err == nil {
		os.RemoveAll(vs.f.dir)
	} else {
		*err = fmt.Errorf("%w (member logs in %s)", *err, vs.f.dir)
	}
}

// fleet is the member processes of one run.
type fleet struct {
	dir, bin string
	http     *http.Client
	procs    []*memberProc
}

// memberProc is one member process.
type memberProc struct {
	name    string
	client  string // host:port of its HTTP API, "" for none
	cmd     *exec.Cmd
	logPath string
	ready   chan struct{} // closed once it printed "member NAME ready"
	readyAt time.Time     // when it did; set before ready is closed
	exited  chan struct{} // closed once it ended; err is set before
	err     error
	killed  atomic.Bool // killed on purpose by the run
}

func newFleet(dir, bin string) *fleet {
	return &fleet{dir: dir, bin: bin, http: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: 30 * time.Second},
	}}
}

// start starts a member with args, and env added to this process's.
func (f *fleet) start(name, client string, env []string, args ...string) (*memberProc, error) {
	m := &memberProc{name: name, client: client, logPath: filepath.Join(f.dir, name+".log"),
		ready: make(chan struct{}), exited: make(chan struct{})}
	logf, err := os.Create(m.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	m.cmd = exec.Command(f.bin, args...)
	m.cmd.Stdout = &readyWriter{want: []byte("member " + name + " ready\n"), ready: m.ready, at: &m.readyAt}
	m.cmd.Stderr = logf
	m.cmd.Env = append(os.Environ(), env...)
	setDeathSignal(m.cmd)
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	f.procs = append(f.procs, m)
	go func() {
		m.err = m.cmd.Wait()
		close(m.exited)
	}()
	return m, nil
}

// kill ends every member at once (SIGKILL: the fleet is thrown away) and
// waits for them to be gone.
func (f *fleet) kill() {
	for _, m := range f.procs {
		m.cmd.Process.Kill()
	}
	for _, m := range f.procs {
		select {
		case <-m.exited:
		case <-time.After(10 * time.Second):
		}
	}
	f.http.CloseIdleConnections()
}

// readyWriter is a member's stdout: it closes ready when want appears.
type readyWriter struct {
	mu    sync.Mutex
	buf   []byte
	want  []byte
	ready chan struct{}
	at    *time.Time // set to the time want appeared, if not nil
	seen  bool
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.seen {
		w.buf = append(w.buf, p...)
		if bytes.Contains(w.buf, w.want) {
			w.seen, w.buf = true, nil
			if w.at != nil {
				*w.at = time.Now()
			}
			close(w.ready)
		}
	}
	return len(p), nil
}

// waitReady waits for the member to print that it is ready: the cluster
// has a leader for every shard and this member has caught up.
func (m *memberProc) waitReady(deadline time.Time) error {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-m.ready:
		return nil
	case <-m.exited:
		return fmt.Errorf("%s exited before it was ready (%v): %s", m.name, m.err, m.logTail(5))
	case <-t.C:
		return fmt.Errorf("%s not ready by the deadline: %s", m.name, m.logTail(5))
	}
}

// logTail returns the last n lines of the member's log.
func (m *memberProc) logTail(n int) string {
	b, err := os.ReadFile(m.logPath)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), n)
}

// getBody GETs path from the member's HTTP API.
func (f *fleet) getBody(m *memberProc, path string) ([]byte, error) {
	resp, err := f.http.Get("http://" + m.client + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s on %s: %s: %s", path, m.name, resp.Status, lastLines(string(b), 2))
	}
	return b, nil
}

func (f *fleet) getJSON(m *memberProc, path string, v any) error {
	b, err := f.getBody(m, path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// The parts of /v1/status and /v1/members read here.
type (
	peersStatus struct {
		Shards []struct {
			Leader uint64 `json:"leader,string"`
		} `json:"shards"`
	}
	peersMembers struct {
		Members []struct {
			Name      string `json:"name"`
			ID        uint64 `json:"id,string"`
			Voter     bool   `json:"voter"`
			Reachable bool   `json:"reachable"`
		} `json:"members"`
	}
)

// findLeader polls the voters until one of them names the leader of shard
// 0 (the only shard: the fleet runs with the default of 1).
func (f *fleet) findLeader(voters []*memberProc, deadline time.Time) (*memberProc, error) {
	var last error
	for {
		for _, v := range voters {
			var st peersStatus
			var ms peersMembers
			if err := f.getJSON(v, "/v1/status", &st); err != nil {
				last = err
				continue
			}
			if len(st.Shards) == 0 || st.Shards[0].Leader == 0 {
				last = fmt.Errorf("%s knows no leader", v.name)
				continue
			}
			if err := f.getJSON(v, "/v1/members", &ms); err != nil {
				last = err
				continue
			}
			for _, m := range ms.Members {
				if m.ID != st.Shards[0].Leader {
					continue
				}
				for _, w := range voters {
					if w.name == m.Name {
						return w, nil
					}
				}
				last = fmt.Errorf("the leader is %q, not a voter started here", m.Name)
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no leader found: %v", last)
		}
		time.Sleep(peersPollEvery)
	}
}

// reachableObservers counts the observers in names that the leader lists
// as reachable non-voting members.
func (f *fleet) reachableObservers(leader *memberProc, names map[string]bool) (int, error) {
	var ms peersMembers
	if err := f.getJSON(leader, "/v1/members", &ms); err != nil {
		return 0, err
	}
	n := 0
	for _, m := range ms.Members {
		if names[m.Name] && !m.Voter && m.Reachable {
			n++
		}
	}
	return n, nil
}

// waitObservers polls the leader until it lists every observer in names as
// a reachable member.
func (f *fleet) waitObservers(leader *memberProc, names map[string]bool, deadline time.Time) error {
	for {
		n, err := f.reachableObservers(leader, names)
		if err == nil && n == len(names) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the leader lists %d of %d observers as reachable members (%v)", n, len(names), err)
		}
		time.Sleep(peersPollEvery)
	}
}

// sample reads the leader's memory peersSamples times and keeps the median
// of each figure.
func (f *fleet) sample(leader *memberProc) (leaderSample, error) {
	var ss []leaderSample
	for range peersSamples {
		s, err := f.sampleOnce(leader)
		if err != nil {
			return leaderSample{}, err
		}
		ss = append(ss, s)
	}
	med := func(get func(leaderSample) int64) int64 {
		vs := make([]int64, len(ss))
		for i, s := range ss {
			vs[i] = get(s)
		}
		slices.Sort(vs)
		return vs[len(vs)/2]
	}
	return leaderSample{
		heapInuse:  med(func(s leaderSample) int64 { return s.heapInuse }),
		heapAlloc:  med(func(s leaderSample) int64 { return s.heapAlloc }),
		stackInuse: med(func(s leaderSample) int64 { return s.stackInuse }),
		goroutines: med(func(s leaderSample) int64 { return s.goroutines }),
		rss:        med(func(s leaderSample) int64 { return s.rss }),
	}, nil
}

// sampleOnce forces a GC on the leader and reads its heap right after:
// with gc=1 and debug=1, net/http/pprof's heap profile runs a GC, then
// reads runtime.MemStats before it allocates anything, and prints them
// after the profile's records.
func (f *fleet) sampleOnce(leader *memberProc) (leaderSample, error) {
	var s leaderSample
	b, err := f.getBody(leader, "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return s, err
	}
	var found int
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		for _, v := range []struct {
			prefix string
			dst    *int64
		}{{"# HeapInuse = ", &s.heapInuse}, {"# HeapAlloc = ", &s.heapAlloc}, {"# Stack = ", &s.stackInuse}} {
			if rest, ok := strings.CutPrefix(line, v.prefix); ok {
				rest, _, _ = strings.Cut(rest, " ") // "# Stack = inuse / sys"
				if *v.dst, err = strconv.ParseInt(rest, 10, 64); err != nil {
					return s, fmt.Errorf("heap profile: %q: %w", line, err)
				}
				found++
			}
		}
	}
	if found != 3 || s.heapInuse <= 0 {
		return s, fmt.Errorf("heap profile: no MemStats in %d bytes", len(b))
	}
	g, err := f.getBody(leader, "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return s, err
	}
	first, _, _ := strings.Cut(string(g), "\n")
	if _, err := fmt.Sscanf(first, "goroutine profile: total %d", &s.goroutines); err != nil {
		return s, fmt.Errorf("goroutine profile: %q: %w", first, err)
	}
	if s.rss, _, err = procMemStatus(strconv.Itoa(leader.cmd.Process.Pid)); err != nil {
		return s, err
	}
	return s, nil
}

// cpuProfile writes the leader's CPU profile over the next d to file.
func (f *fleet) cpuProfile(leader *memberProc, d time.Duration, file string) error {
	c := &http.Client{Timeout: d + 30*time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", leader.client, max(1, int(d.Round(time.Second)/time.Second))))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return os.WriteFile(file, b, 0o644)
}

// procCPU returns the user+system CPU time of process pid so far, from
// /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	u, s, err := procCPUSplit(pid)
	return u + s, err
}

// cpuTimes is the machine's CPU time so far, in ticks, from /proc/stat.
type cpuTimes struct{ total, idle, iowait int64 }

func machineCPU() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(first) // cpu user nice system idle iowait irq softirq steal ...
	if len(fields) < 6 || fields[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: %q", first)
	}
	var t cpuTimes
	for i, f := range fields[1:] {
		if i >= 8 { // guest times are counted in user and nice already
			break
		}
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %q: %w", first, err)
		}
		t.total += v
		switch i {
		case 3:
			t.idle = v
		case 4:
			t.iowait = v
		}
	}
	return t, nil
}

// since returns the shares of the time from t0 to t that the machine's
// CPUs were busy, and waiting for I/O.
func (t cpuTimes) since(t0 cpuTimes) (busy, iowait float64) {
	total := float64(t.total - t0.total)
	if total <= 0 {
		return 0, 0
	}
	idle, wait := float64(t.idle-t0.idle), float64(t.iowait-t0.iowait)
	return (total - idle - wait) / total, wait / total
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat's times.
var clockTicks = sync.OnceValue(func() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
			return v
		}
	}
	return 100 // Linux's USER_HZ everywhere it runs
})

// pacedLoad puts at a fixed rate through one member's HTTP API, whatever
// the latency: put i is due at i/rate seconds from the start, and one
// that is due goes out at once, up to 64 in flight. A due put finding 64
// in flight is skipped and counted. The schedule does not slip when this
// process gets the CPU late (a time.Ticker would drop the ticks missed):
// it catches up, so that the load offered is the rate asked.
type pacedLoad struct {
	offered, acked, skipped atomic.Int64
	errs                    errCounter
	stop                    chan struct{}
	done                    chan struct{}
	once                    sync.Once
}

func startLoad(c *http.Client, addr string, rate, size int) *pacedLoad {
	value := bytes.Repeat([]byte("v"), size)
	url := "http://" + addr + "/v1/kv/put"
	// 1,000 keys, overwritten in turn: the store does not grow with the
	// run's length.
	return startPaced(rate, func(i int) error { return httpPut(c, url, fmt.Sprintf("/peers/k%d", i%1000), value) })
}

// startPaced calls put(i) for i = 0, 1, ... at rate per second, as
// pacedLoad describes, counting what put acknowledges and its errors.
func startPaced(rate int, put func(i int) error) *pacedLoad {
	l := &pacedLoad{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		inFlight := make(chan struct{}, 64)
		interval := time.Second / time.Duration(rate)
		t := time.NewTicker(interval)
		defer t.Stop()
		start := time.Now()
		for i := 0; ; {
			select {
			case <-l.stop:
				return
			case <-t.C:
			}
			for due := int(time.Since(start) / interval); i < due; i++ {
				l.offered.Add(1)
				select {
				case inFlight <- struct{}{}:
				default:
					l.skipped.Add(1)
					continue
				}
				wg.Add(1)
				go func(i int) {
					defer func() { <-inFlight; wg.Done() }()
					if err := put(i); err != nil {
						l.errs.add(err)
					} else {
						l.acked.Add(1)
					}
				}(i)
			}
		}
	}()
	return l
}

// end stops the load and waits for the puts in flight.
func (l *pacedLoad) end() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}

// httpPut is POST /v1/kv/put (coord/httpapi): keys and values travel as
// base64 in JSON.
func httpPut(c *http.Client, url, key string, value []byte) error {
	body, err := json.Marshal(struct {
		Key   []byte `json:"key"`
		Value []byte `json:"value"`
	}{[]byte(key), value})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return fmt.Errorf("put: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// writePeers prints the table of rows.
func writePeers(out io.Writer, cfg peersConfig, rows []peersRow, version string) {
	fmt.Fprintf(out, "What each observer costs the Raft leader: 3 voters and N observers, each member a process of cmd/coordkit (%s) on 127.0.0.1, observers admitted through --join-seeds.\n", version)
	fmt.Fprintf(out, "Load: %d B values put at %d/s (paced, to the leader's HTTP API, 1,000 keys) for %s after a %s warm-up.\n",
		cfg.valueSize, cfg.rate, cfg.duration, cfg.warmup())
	fmt.Fprintf(out, "One run on a shared %d-core machine: every member process and this one share its cores. Indicative figures, not precise ones.\n\n", runtime.NumCPU())

	var base *peersRow
	for i := range rows {
		if rows[i].observers == 0 {
			base = &rows[i]
		}
	}
	perObserver := func(r peersRow, get func(leaderSample) int64, s func(peersRow) leaderSample) string {
		if base == nil || r.observers == 0 {
			return "–"
		}
		return fmt.Sprintf("%+.0f KiB", float64(get(s(r))-get(s(*base)))/1024/float64(r.observers))
	}
	idleOf := func(r peersRow) leaderSample { return r.idle }
	busyOf := func(r peersRow) leaderSample { return r.busy }
	heapInuse := func(s leaderSample) int64 { return s.heapInuse }
	table := [][]string{{"observers", "leader", "heap idle", "heap busy", "per observer idle", "per observer busy",
		"writes/s", "CPU/write", "vs 0 observers", "RSS idle", "RSS busy"}}
	for _, r := range rows {
		ratio := "–"
		if base != nil && base.cpuPerWrite() > 0 && r.cpuPerWrite() > 0 {
			ratio = fmt.Sprintf("%.2fx", float64(r.cpuPerWrite())/float64(base.cpuPerWrite()))
		}
		table = append(table, []string{strconv.Itoa(r.observers), r.leader,
			fmtMiB(r.idle.heapInuse), fmtMiB(r.busy.heapInuse),
			perObserver(r, heapInuse, idleOf), perObserver(r, heapInuse, busyOf),
			fmt.Sprintf("%.0f", float64(r.acked)/r.window.Seconds()), fmt.Sprintf("%.3f ms", float64(r.cpuPerWrite())/1e6), ratio,
			mib(r.idle.rss), mib(r.busy.rss)})
	}
	writeMarkdown(out, table)

	fmt.Fprintln(out)
	heapAlloc := func(s leaderSample) int64 { return s.heapAlloc }
	stack := func(s leaderSample) int64 { return s.stackInuse }
	details := [][]string{{"observers", "live heap idle", "live heap busy", "live per observer idle", "live per observer busy",
		"stacks idle", "stacks busy", "goroutines idle", "goroutines busy", "stacks per observer idle", "idle CPU", "leader CPU", "writes acked", "machine busy", "I/O wait", "errors", "skipped", "join time"}}
	for _, r := range rows {
		gor := func(s leaderSample) int64 { return s.goroutines }
		details = append(details, []string{strconv.Itoa(r.observers),
			fmtMiB(r.idle.heapAlloc), fmtMiB(r.busy.heapAlloc),
			perObserver(r, heapAlloc, idleOf), perObserver(r, heapAlloc, busyOf),
			fmtMiB(r.idle.stackInuse), fmtMiB(r.busy.stackInuse),
			strconv.FormatInt(gor(r.idle), 10), strconv.FormatInt(gor(r.busy), 10),
			perObserver(r, stack, idleOf), fmt.Sprintf("%.1f%%", 100*r.idleCPU.Seconds()/r.idleWindow.Seconds()),
			r.cpu.Round(10 * time.Millisecond).String(), strconv.FormatInt(r.acked, 10),
			fmt.Sprintf("%.0f%%", 100*r.machineBusy), fmt.Sprintf("%.0f%%", 100*r.machineIOWait),
			strconv.FormatInt(r.errs, 10), strconv.FormatInt(r.skipped, 10), r.joinTime.Round(100 * time.Millisecond).String()})
	}
	writeMarkdown(out, details)

	fmt.Fprintln(out)
	fmt.Fprintln(out, "- heap: the leader's runtime.MemStats.HeapInuse right after a forced GC (GET /debug/pprof/heap?gc=1&debug=1), median of 3; live heap: HeapAlloc at the same moment; stacks: StackInuse.")
	fmt.Fprintln(out, "- idle: every observer joined and listed as reachable by the leader, no writes. busy: sampled after the measured window, while the load still runs.")
	fmt.Fprintln(out, "- per observer: (figure with N observers - figure with 0) / N.")
	fmt.Fprintln(out, "- CPU/write: the leader process's utime+stime (/proc/PID/stat) over the measured window, divided by the writes acknowledged in it; vs 0 observers: that over the same with 0 observers.")
	fmt.Fprintln(out, "- writes/s: acknowledged over the measured window; skipped: writes due while 64 were in flight, never sent; machine busy, I/O wait: shares of all cores' time over the window (/proc/stat).")
	fmt.Fprintf(out, "- idle CPU: the leader's CPU time over %s with every observer joined and no writes, in %% of one core; leader CPU: the same over the measured window.\n", cfg.idleWindow())
	fmt.Fprintln(out, "- RSS: the leader's VmRSS when its heap was sampled. Observers run with GOMAXPROCS=1.")
	for _, r := range rows {
		if want := float64(cfg.rate) * r.window.Seconds(); float64(r.acked) < 0.95*want {
			fmt.Fprintf(out, "- %d observers: %.0f writes/s acknowledged of the %d/s offered: the fleet did not keep up (machine %.0f%% busy, %.0f%% I/O wait)\n",
				r.observers, float64(r.acked)/r.window.Seconds(), cfg.rate, 100*r.machineBusy, 100*r.machineIOWait)
		}
		if r.firstErr != nil {
			fmt.Fprintf(out, "- %d observers: %d put errors in the window, the first: %v\n", r.observers, r.errs, r.firstErr)
		}
		for _, n := range r.notes {
			fmt.Fprintf(out, "- %d observers: %s\n", r.observers, n)
		}
	}
}

// fmtMiB formats bytes as MiB.
func fmtMiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// parseObservers parses -observers: comma-separated counts.
func parseObservers(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("-observers: %q is not a count", f)
		}
		out = append(out, n)
	}
	return out, nil
}
