package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/coordkit/coordkit/internal/freeport"
)

// startupResult is what -workload fleet measures of start-up, which every
// rolling deploy of a fleet pays per instance.
type startupResult struct {
	exec        dist // running "coordkit -h": what starting a process costs, Open aside
	singleReady dist // a fresh single member: process start to "member NAME ready"
	singlePut   dist // the same, to its first acknowledged put
	observer    dist // an observer joining an idle 3-voter cluster: process start to ready
	// A lone member left idle: the floor under any member's idle cost, with
	// no peer to send to or hear from.
	loneCPU float64 // % of a core over cfg.idle
	loneRSS int64
}

// measureStartup starts fresh single members one after another, each
// written to as soon as its HTTP API answers, then 3 voters and observers
// joining them one at a time. Every figure is in milliseconds from the
// process's start, so it includes starting the process (exec).
func measureStartup(cfg fleetConfig, bin string) (res startupResult, err error) {
	var execs, ready, put, obs []float64
	for range cfg.startups {
		t0 := time.Now()
		// -h prints the usage and exits 2: only a failure to run counts.
		if err := exec.Command(bin, "-h").Run(); err != nil {
			if _, ok := err.(*exec.ExitError); !ok {
				return res, fmt.Errorf("%s -h: %w", bin, err)
			}
		}
		execs = append(execs, ms(time.Since(t0)))
	}
	res.exec = distOf(execs)

	dir, err := os.MkdirTemp("", "coordkit-startup-")
	if err != nil {
		return res, err
	}
	f := newFleet(dir, bin)
	defer func() {
		f.kill()
		if err == nil {
			os.RemoveAll(dir)
		} else {
			err = fmt.Errorf("%w (member logs in %s)", err, dir)
		}
	}()
	for i := range cfg.startups {
		r, p, err := singleStartup(f, i)
		if err != nil {
			return res, err
		}
		ready, put = append(ready, r), append(put, p)
	}
	res.singleReady, res.singlePut = distOf(ready), distOf(put)
	if res.loneCPU, res.loneRSS, err = loneIdle(f, cfg); err != nil {
		return res, err
	}
	fmt.Fprintf(cfg.progress, "start-up: single member ready p50 %.0f ms, first put p50 %.0f ms (exec alone %.0f ms); a lone idle member %.2f%% of a core, RSS %s\n",
		res.singleReady.p50, res.singlePut.p50, res.exec.p50, res.loneCPU, mib(res.loneRSS))

	vs, err := startVoters(bin, "startup", 0, 2*cfg.startups)
	if err != nil {
		return res, err
	}
	defer vs.finish(&err)
	time.Sleep(fleetSettle) // the voters' own start-up is over: the cluster is idle
	for i := range cfg.startups {
		name := fmt.Sprintf("o%d", i+1)
		t0 := time.Now()
		m, err := vs.f.start(name, vs.addrs[9+cfg.startups+i], nil,
			"--name", name, "--data-dir", filepath.Join(vs.f.dir, name),
			"--listen-peer-urls", "http://"+vs.addrs[9+i], "--listen-client-urls", "http://"+vs.addrs[9+cfg.startups+i],
			"--initial-cluster-token", vs.token, "--initial-cluster-state", "existing", "--observer",
			"--join-seeds", strings.Join(vs.seeds, ","), "--cluster-secret-file", vs.secret)
		if err != nil {
			return res, err
		}
		if err := m.waitReady(t0.Add(fleetJoinTimeout)); err != nil {
			return res, err
		}
		obs = append(obs, ms(m.readyAt.Sub(t0)))
	}
	res.observer = distOf(obs)
	fmt.Fprintf(cfg.progress, "start-up: observer ready p50 %.0f ms, max %.0f ms\n", res.observer.p50, res.observer.max)
	return res, nil
}

// singleStartup starts a fresh single member with the default config and
// puts a key through its HTTP API, asking again every 2 ms until it is
// acknowledged. It returns the milliseconds from the process's start to
// "ready" and to the first acknowledgement, and stops the member.
func singleStartup(f *fleet, i int) (ready, put float64, err error) {
	name := fmt.Sprintf("single%d", i+1)
	t0 := time.Now()
	m, stop, err := startSingle(f, name)
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	url := "http://" + m.client + "/v1/kv/put"
	deadline := t0.Add(time.Minute)
	for {
		_, perr := httpPutRev(f.http, url, "/startup", []byte("v"))
		if perr == nil {
			put = ms(time.Since(t0))
			break
		}
		select {
		case <-m.exited:
			return 0, 0, fmt.Errorf("%s exited before a put was acknowledged (%v): %s", name, m.err, m.logTail(5))
		default:
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%s: no put acknowledged within a minute: %v", name, perr)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := m.waitReady(deadline); err != nil {
		return 0, 0, err
	}
	return ms(m.readyAt.Sub(t0)), put, nil
}

// loneIdle starts a single member, leaves it idle for cfg.idle after
// fleetSettle, and returns its CPU (% of a core) and RSS (KiB).
func loneIdle(f *fleet, cfg fleetConfig) (cpu float64, rss int64, err error) {
	m, stop, err := startSingle(f, "lone")
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	if err := m.waitReady(time.Now().Add(time.Minute)); err != nil {
		return 0, 0, err
	}
	time.Sleep(fleetSettle)
	pid := m.cmd.Process.Pid
	u0, s0, err := procCPUSplit(pid)
	if err != nil {
		return 0, 0, err
	}
	w0 := time.Now()
	time.Sleep(cfg.idle)
	u1, s1, err := procCPUSplit(pid)
	if err != nil {
		return 0, 0, err
	}
	cpu = 100 * (u1 + s1 - u0 - s0).Seconds() / time.Since(w0).Seconds()
	r, err := rssOf([]*memberProc{m})
	return cpu, int64(r.p50), err
}

// startSingle starts a fresh single member with the default config; stop
// kills it and waits for it to be gone.
func startSingle(f *fleet, name string) (m *memberProc, stop func(), err error) {
	addrs, err := freeport.Addrs(2)
	if err != nil {
		return nil, nil, err
	}
	m, err = f.start(name, addrs[1], nil, "--name", name, "--data-dir", filepath.Join(f.dir, name),
		"--listen-peer-urls", "http://"+addrs[0], "--listen-client-urls", "http://"+addrs[1])
	if err != nil {
		return nil, nil, err
	}
	return m, func() {
		m.killed.Store(true)
		m.cmd.Process.Kill()
		<-m.exited
	}, nil
}

// writeStartup writes the start-up table.
func writeStartup(out io.Writer, cfg fleetConfig, r startupResult) {
	fmt.Fprintf(out, "\nStart-up, %d runs each, from starting the process (`coordkit -h` takes %.0f ms p50 here):\n\n", cfg.startups, r.exec.p50)
	row := func(what string, d dist) []string {
		return []string{what, fmt.Sprintf("%.0f ms", d.p50), fmt.Sprintf("%.0f ms", d.max)}
	}
	writeMarkdown(out, [][]string{{"", "p50", "max"},
		row("fresh single member (default config): ready", r.singleReady),
		row("fresh single member: first put acknowledged", r.singlePut),
		row("observer joining an idle 3-voter cluster through --join-seeds: ready", r.observer)})
	fmt.Fprintln(out)
	fmt.Fprintln(out, "- first put: a put sent every 2 ms from the start until one is acknowledged (connection refused until the HTTP API listens).")
	fmt.Fprintln(out, "- observer: started one at a time, each after the last is ready, 5 s after the voters were.")
	fmt.Fprintf(out, "- a lone member (the default config, no peer) left idle for %s: %.2f%% of a core, RSS %s. This is the floor under every member's idle cost and memory: dragonboat's ticks and workers, pebble and the Go runtime, with nothing to send or receive.\n", cfg.idle, r.loneCPU, mib(r.loneRSS))
	fmt.Fprintln(out)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
