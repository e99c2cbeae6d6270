package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the child process of the memory
// workloads, as the command's binary does.
func TestMain(m *testing.M) {
	if spec, ok := childSpec(os.Args[1:]); ok {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

// testParams shrinks every workload: these tests check that each one runs
// and counts, never how fast.
func testParams() params {
	return params{duration: 300 * time.Millisecond, watchers: 100, leases: 200, idle: 200 * time.Millisecond}
}

// TestWorkloads runs every in-process workload briefly against every system,
// sharing one cluster per system and voter count, and checks that each
// counted operations and lost no watch event.
func TestWorkloads(t *testing.T) {
	p := testParams()
	for _, kind := range allSystems {
		for _, voters := range []int{3, 1} {
			var ws []workload
			for _, w := range workloads() {
				if w.body != nil && w.voters == voters {
					ws = append(ws, w)
				}
			}
			s, err := startSystem(kind, voters)
			if err != nil {
				t.Fatalf("starting %s with %d voters: %v", kind, voters, err)
			}
			for _, w := range ws {
				t.Run(kind+"/"+w.name, func(t *testing.T) {
					f := w.body(p, s)
					if why, ok := w.na[kind]; ok {
						if f.na == "" {
							t.Fatalf("%s is marked %q, but ran: %+v", w.name, why, f)
						}
						return
					}
					checkFigure(t, w, f)
				})
			}
			s.close()
		}
	}
}

func checkFigure(t *testing.T, w workload, f figure) {
	t.Helper()
	switch {
	case f.na != "":
		t.Fatalf("no figure: %s", f.na)
	case f.err != nil:
		t.Fatalf("failed: %v", f.err)
	case f.ops <= 0:
		t.Fatalf("no operations counted: %+v", f)
	case f.lost != 0:
		t.Fatalf("%d watch events lost (%s)", f.lost, f.note)
	case (strings.HasPrefix(w.name, "watch") || strings.HasPrefix(w.name, "pubsub-deliver")) && f.errs != 0:
		t.Fatalf("%d watch errors (%s)", f.errs, f.note)
	}
	if f.errs > 0 {
		t.Logf("%d errors next to %d operations, the first: %v", f.errs, f.ops, f.firstErr)
	}
	t.Logf("%s", cell(f, w.metric))
}

// TestMemoryWorkloads runs the child-process workloads briefly.
func TestMemoryWorkloads(t *testing.T) {
	p := testParams()
	for _, w := range workloads() {
		if w.child == nil {
			continue
		}
		for _, kind := range allSystems {
			t.Run(kind+"/"+w.name, func(t *testing.T) {
				p := p
				if w.name == "put-256-hwm" {
					p.duration = time.Second // 256 clients' first puts on a busy machine
				}
				f := w.child(p, kind)
				if f.err != nil {
					t.Fatal(f.err)
				}
				if f.mem.process <= 0 || f.mem.base <= 0 {
					t.Fatalf("no memory figure: %+v", f.mem)
				}
				if w.name == "put-256-hwm" && f.ops <= 0 {
					t.Fatalf("the child counted no puts: %+v", f)
				}
				t.Logf("%s", cell(f, w.metric))
			})
		}
	}
}

// TestWorkloadInChild runs timed workloads the way the command does, each
// in a child process: the child must find the workload, run it against the
// system asked, and the parent must get back what it measured.
func TestWorkloadInChild(t *testing.T) {
	p := testParams()
	for _, name := range []string{"put-seq-1v", "watch-1-1v"} {
		var w workload
		for _, c := range workloads() {
			if c.name == name {
				w = c
			}
		}
		for _, kind := range allSystems {
			if _, ok := w.na[kind]; ok {
				continue
			}
			t.Run(kind+"/"+name, func(t *testing.T) {
				f, skipped := runOne(p, w, kind, true)
				if skipped {
					t.Fatal("skipped")
				}
				checkFigure(t, w, f)
				if f.elapsed <= 0 || f.p50 <= 0 || f.p99 < f.p50 {
					t.Fatalf("figure lost on the way: %+v", f)
				}
			})
		}
	}
	// A workload the child does not know comes back as an error.
	if f := runInChild(p, workload{name: "no-such-workload"}, sysCoordkit); f.err == nil || !strings.Contains(f.err.Error(), "no-such-workload") {
		t.Fatalf("unknown workload: %+v", f)
	}
}

// A figure survives the trip from child to parent, errors included.
func TestWireFigure(t *testing.T) {
	f := figure{result: result{ops: 7, errs: 2, firstErr: errors.New("first"), elapsed: time.Second, p50: time.Millisecond, p99: 2 * time.Millisecond},
		lost: 1, note: "n", na: "x", err: errors.New("e")}
	g := toWire(f).figure()
	if g.ops != 7 || g.errs != 2 || g.firstErr.Error() != "first" || g.elapsed != time.Second || g.p50 != time.Millisecond ||
		g.p99 != 2*time.Millisecond || g.lost != 1 || g.note != "n" || g.na != "x" || g.err.Error() != "e" {
		t.Fatalf("%+v became %+v", f, g)
	}
	if h := toWire(figure{}).figure(); h.firstErr != nil || h.err != nil {
		t.Fatalf("no error became %+v", h)
	}
}

// TestShardsWorkload keeps the original -workload shards running.
func TestShardsWorkload(t *testing.T) {
	var out bytes.Buffer
	if err := shardsWorkload(50*time.Millisecond, &out); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 13 {
		t.Fatalf("want a header and 12 rows, got %d lines:\n%s", n, out.String())
	}
}

// TestSteadyWorkload runs -workload steady briefly: each system's child
// reports every phase, with writes that only grow and memory figures.
func TestSteadyWorkload(t *testing.T) {
	for _, kind := range []string{sysCoordkit, sysEtcd} {
		phases, err := spawnSteady(kind, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for i, ph := range phases {
			if ph.writes <= 0 || ph.heapKiB == 0 || ph.goKiB == 0 || ph.rssKiB == 0 || i > 0 && ph.writes < phases[i-1].writes {
				t.Fatalf("%s phase %d: %+v (all: %+v)", kind, i+1, ph, phases)
			}
		}
	}
	var out bytes.Buffer
	if err := steadyWorkload(time.Second, []string{sysCoordkit}, &out); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "| coordkit |"); n != steadyPhases+1 {
		t.Fatalf("want %d phases and a ratio, got %d rows:\n%s", steadyPhases, n, out.String())
	}
}

// TestReport renders a table, the targets and the SVG from made-up figures.
func TestReport(t *testing.T) {
	ws := workloads()
	res := results{}
	for _, w := range ws {
		res[w.name] = map[string]figure{}
		for i, s := range allSystems {
			f := figure{result: result{ops: int64(1000 * (i + 1)), elapsed: time.Second,
				p50: time.Duration(i+1) * time.Millisecond, p99: time.Duration(i+2) * time.Millisecond},
				mem: memory{perMember: int64(1024 * (i + 1)), process: 40960, base: 30720, what: "RSS"}}
			if why, ok := w.na[s]; ok {
				f = figure{na: why}
			}
			res[w.name][s] = f
		}
	}
	res["put-64"][sysEtcd] = figure{err: errors.New("boom")}
	var out bytes.Buffer
	writeTable(&out, ws, allSystems, res)
	writeTargets(&out, res)
	text := out.String()
	for _, want := range []string{"| put-256 ", "0.50x ops/s", "n/a (no lock)", "error: boom", "MISSED", "met",
		"lock-uncontended: coordkit/etcd p50 = 0.50x", "lock-64: coordkit/etcd ops/s = 0.50x"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	var svg bytes.Buffer
	writeSVG(&svg, ws, res)
	d := xml.NewDecoder(&svg)
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
}

// TestSelectWorkloads resolves -workload lists.
func TestSelectWorkloads(t *testing.T) {
	if ws, err := selectWorkloads("all"); err != nil || len(ws) != len(workloads()) {
		t.Fatalf("all: %d workloads, %v", len(ws), err)
	}
	if ws, err := selectWorkloads("put-256,get-lin"); err != nil || len(ws) != 2 || ws[1].name != "get-lin" {
		t.Fatalf("list: %v, %v", ws, err)
	}
	if _, err := selectWorkloads("nope"); err == nil {
		t.Fatal("unknown workload accepted")
	}
}

// TestHist checks the histogram's quantiles against exact ones.
func TestHist(t *testing.T) {
	var h hist
	var all []time.Duration
	for i := range 100000 {
		d := time.Duration((i*7919)%5000000) + time.Duration(i%37)
		h.add(d)
		all = append(all, d)
	}
	p50, p99 := percentiles(all)
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, p50}, {0.99, p99}} {
		got := h.quantile(c.q)
		if diff := float64(got-c.want) / float64(c.want); diff > 1.0/64 || diff < -1.0/64 {
			t.Errorf("quantile(%v) = %v, exact %v", c.q, got, c.want)
		}
	}
	for _, ns := range []int64{0, 1, 63, 64, 65, 127, 128, 1000, 123456789, 1 << 62} {
		if v := histValue(histBucket(ns)); float64(v-ns) > float64(ns)/64+1 || float64(ns-v) > float64(ns)/64+1 {
			t.Errorf("bucket of %d has value %d", ns, v)
		}
	}
}

// TestPeersWorkload runs -workload peers tiny: 0 and 2 observers, 2 s of
// puts at 50/s. It checks what it counted, never how fast.
func TestPeersWorkload(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	cfg := defaultPeersConfig()
	cfg.observers, cfg.duration, cfg.rate = []int{0, 2}, 2*time.Second, 50
	cfg.progress = testWriter{t}
	var out bytes.Buffer
	rows, err := peersWorkload(cfg, &out)
	t.Logf("\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("want 2 rows, got %d", len(rows))
	}
	for _, r := range rows {
		switch {
		case r.joined != r.observers:
			t.Errorf("%d observers: the leader lists %d", r.observers, r.joined)
		case r.acked <= 0:
			t.Errorf("%d observers: no write acknowledged (%d errors, the first: %v)", r.observers, r.errs, r.firstErr)
		case r.idle.heapInuse <= 0 || r.busy.heapInuse <= 0 || r.idle.heapAlloc <= 0 || r.busy.heapAlloc <= 0:
			t.Errorf("%d observers: no heap figure: idle %+v, busy %+v", r.observers, r.idle, r.busy)
		case r.idle.rss <= 0 || r.busy.rss <= 0 || r.idle.goroutines <= 0:
			t.Errorf("%d observers: no RSS or goroutines: idle %+v, busy %+v", r.observers, r.idle, r.busy)
		case r.cpu <= 0 || r.cpuPerWrite() <= 0:
			t.Errorf("%d observers: no leader CPU counted: %v over %d writes", r.observers, r.cpu, r.acked)
		case r.leader == "":
			t.Errorf("%d observers: no leader", r.observers)
		}
		for _, n := range r.notes {
			t.Errorf("%d observers: %s", r.observers, n)
		}
	}
	for _, want := range []string{"| observers ", "shared", "per observer idle"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestFleetWorkload runs -workload fleet tiny: 0 and 2 observers, 2 s of
// puts at 50/s, one observer killed. It checks what it counted and that
// every step ran, never how fast.
func TestFleetWorkload(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	cfg := defaultFleetConfig()
	cfg.observers, cfg.duration, cfg.rate, cfg.closed, cfg.clients = []int{0, 2}, 2*time.Second, 50, time.Second, 4
	cfg.kill, cfg.grace, cfg.idle, cfg.startups = 1, 2*time.Second, time.Second, 2
	cfg.progress = testWriter{t}
	var out, svg bytes.Buffer
	rows, st, err := fleetWorkload(cfg, &out, &svg)
	t.Logf("\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	for what, d := range map[string]dist{"exec": st.exec, "single member ready": st.singleReady,
		"single member first put": st.singlePut, "observer ready": st.observer} {
		if d.p50 <= 0 || d.max < d.p50 {
			t.Errorf("start-up, %s: %+v", what, d)
		}
	}
	if st.loneRSS <= 0 || st.loneCPU < 0 {
		t.Errorf("lone idle member: CPU %.2f%%, RSS %d", st.loneCPU, st.loneRSS)
	}
	if len(rows) != 2 {
		t.Fatalf("want 2 rows, got %d", len(rows))
	}
	for _, r := range rows {
		u, s := r.cpuPerWrite()
		switch {
		case r.joined != r.observers || len(r.joinFailures) > 0:
			t.Errorf("%d observers: %d joined, failures %v", r.observers, r.joined, r.joinFailures)
		case r.acked <= 0 || u+s <= 0:
			t.Errorf("%d observers: %d writes acknowledged, leader CPU %v (%d errors, the first: %v)", r.observers, r.acked, u+s, r.errs, r.firstErr)
		case r.rssLeaderIdle <= 0 || r.rssLeaderBusy <= 0 || r.heapLeaderIdle <= 0:
			t.Errorf("%d observers: no leader memory figure: %+v", r.observers, r)
		case r.closedOps <= 0:
			t.Errorf("%d observers: no closed-loop write acknowledged", r.observers)
		case r.resumeAfter <= 0:
			t.Errorf("%d observers: no resumption measured after the leader was killed", r.observers)
		}
		if r.observers == 0 {
			continue
		}
		switch {
		case r.watched == 0 || r.lost != 0 || r.reordered != 0:
			t.Errorf("%d observers: %d puts watched on every observer, %d lost, %d out of order", r.observers, r.watched, r.lost, r.reordered)
		case r.propagation.max < r.propagation.p50:
			t.Errorf("%d observers: propagation %+v", r.observers, r.propagation)
		case r.rssObsIdle.p50 <= 0 || r.rssObsBusy.p50 <= 0:
			t.Errorf("%d observers: no observer RSS", r.observers)
		case r.killed != 1 || r.notRemove != 0 || r.removal.max <= 0:
			t.Errorf("%d observers: %d killed, %d not removed, removal %+v", r.observers, r.killed, r.notRemove, r.removal)
		case r.reapTicks == 0:
			t.Errorf("%d observers: no reaper tick counted", r.observers)
		case r.followAfter <= 0 || r.notFollowing != 0:
			t.Errorf("%d observers: every observer followed after %v, %d never", r.observers, r.followAfter, r.notFollowing)
		}
		for _, n := range r.notes {
			t.Errorf("%d observers: %s", r.observers, n)
		}
	}
	for _, want := range []string{"| observers ", "all ready", "propagation", "On paper, 1,000 instances"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(svg.String(), "<polyline") {
		t.Errorf("chart has no line: %s", svg.String())
	}
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestParseObservers parses -observers.
func TestParseObservers(t *testing.T) {
	if got, err := parseObservers("0, 10,40"); err != nil || !slices.Equal(got, []int{0, 10, 40}) {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "x", "-1", "1,,2"} {
		if _, err := parseObservers(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestV3Workloads runs the workloads of coordkit behind etcd's API
// (coordkit-v3) briefly, and checks every other workload marks it n/a.
func TestV3Workloads(t *testing.T) {
	p := testParams()
	s, err := startSystem(sysV3, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	ran := 0
	for _, w := range workloads() {
		if _, na := w.na[sysV3]; na {
			if v3Workloads[w.name] {
				t.Fatalf("%s is marked n/a for %s", w.name, sysV3)
			}
			continue
		}
		if w.voters != 3 {
			continue
		}
		ran++
		t.Run(w.name, func(t *testing.T) { checkFigure(t, w, w.body(p, s)) })
	}
	if ran != len(v3Workloads) {
		t.Fatalf("ran %d workloads for %s, want %d", ran, sysV3, len(v3Workloads))
	}
}
