package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Every case runs in a child process of its own, so that what one system
// leaves behind (memory it still holds after closing, background work) does
// not weigh on the next: the parent re-executes its own binary with
// -child=SPEC, where SPEC is one of
//
//	idle,SYSTEM,MEMBERS,IDLE   start a cluster, idle, report RSS and HWM
//	put256,SYSTEM,DURATION     start 3 members, run put-256, report HWM
//	run,WORKLOAD,SYSTEM,DURATION,WATCHERS,LEASES
//	                           run a timed workload, report its figure
//	steady,SYSTEM,DURATION     start 3 members, overwrite a fixed key set,
//	                           report heap and RSS after each phase (steady.go)
//
// For the first two the child prints one line "CHILD rss=KiB hwm=KiB
// base=KiB ops=N cpu=MS" and exits. base is the RSS before the cluster
// started (Go runtime, the binary, and every system's package init); cpu is
// the CPU time the process used while idling (idle) or 0. For run it prints
// "CHILD-FIGURE " and the figure in JSON.
const childFlag = "-child="

// childSpec finds -child=SPEC among args.
func childSpec(args []string) (string, bool) {
	for _, a := range args {
		for _, pre := range []string{childFlag, "-" + childFlag} {
			if spec, ok := strings.CutPrefix(a, pre); ok {
				return spec, true
			}
		}
	}
	return "", false
}

// runChild runs a child spec and returns the process exit code.
func runChild(spec string) int {
	if err := child(spec); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

func child(spec string) error {
	f := strings.Split(spec, ",")
	base, _, err := memStatus()
	if err != nil {
		return err
	}
	switch {
	case len(f) == 4 && f[0] == "idle":
		members, err := strconv.Atoi(f[2])
		if err != nil {
			return err
		}
		idle, err := time.ParseDuration(f[3])
		if err != nil {
			return err
		}
		s, err := startSystem(f[1], members)
		if err != nil {
			return err
		}
		cpu0 := cpuTime()
		time.Sleep(idle)
		cpu := cpuTime() - cpu0
		rss, hwm, err := memStatus()
		if err != nil {
			return err
		}
		fmt.Printf("CHILD rss=%d hwm=%d base=%d ops=0 cpu=%d\n", rss, hwm, base, cpu.Milliseconds())
		s.close()
		return nil
	case len(f) == 3 && f[0] == "put256":
		d, err := time.ParseDuration(f[2])
		if err != nil {
			return err
		}
		s, err := startSystem(f[1], 3)
		if err != nil {
			return err
		}
		r := putLoad(params{duration: d}, s, 256, 16)
		rss, hwm, err := memStatus()
		if err != nil {
			return err
		}
		fmt.Printf("CHILD rss=%d hwm=%d base=%d ops=%d cpu=0\n", rss, hwm, base, r.ops)
		s.close()
		return nil
	case len(f) == 6 && f[0] == "run":
		return childRun(f[1:])
	case len(f) == 3 && f[0] == "steady":
		d, err := time.ParseDuration(f[2])
		if err != nil {
			return err
		}
		return childSteady(f[1], d)
	}
	return fmt.Errorf("bad spec %q", spec)
}

// childRun runs one timed workload against one system and prints its
// figure. args: WORKLOAD,SYSTEM,DURATION,WATCHERS,LEASES.
func childRun(args []string) error {
	var w *workload
	for _, c := range workloads() {
		if c.name == args[0] && c.body != nil {
			w = &c
		}
	}
	if w == nil {
		return fmt.Errorf("no timed workload %q", args[0])
	}
	p := defaultParams()
	var err error
	if p.duration, err = time.ParseDuration(args[2]); err != nil {
		return err
	}
	if p.watchers, err = strconv.Atoi(args[3]); err != nil {
		return err
	}
	if p.leases, err = strconv.Atoi(args[4]); err != nil {
		return err
	}
	b, err := json.Marshal(toWire(w.run(p, args[1])))
	if err != nil {
		return err
	}
	fmt.Printf("CHILD-FIGURE %s\n", b)
	return nil
}

// wireFigure is a timed figure as a child reports it.
type wireFigure struct {
	Ops, Errs         int64
	FirstErr, Err, NA string
	Elapsed, P50, P99 time.Duration
	Lost              int64
	Note              string
}

func toWire(f figure) wireFigure {
	w := wireFigure{Ops: f.ops, Errs: f.errs, Elapsed: f.elapsed, P50: f.p50, P99: f.p99, Lost: f.lost, Note: f.note, NA: f.na}
	if f.firstErr != nil {
		w.FirstErr = f.firstErr.Error()
	}
	if f.err != nil {
		w.Err = f.err.Error()
	}
	return w
}

func (w wireFigure) figure() figure {
	f := figure{result: result{ops: w.Ops, errs: w.Errs, elapsed: w.Elapsed, p50: w.P50, p99: w.P99}, lost: w.Lost, note: w.Note, na: w.NA}
	if w.FirstErr != "" {
		f.firstErr = errors.New(w.FirstErr)
	}
	if w.Err != "" {
		f.err = errors.New(w.Err)
	}
	return f
}

// runInChild runs timed workload w against system kind in a child process.
func runInChild(p params, w workload, kind string) figure {
	out, err := spawnOutput(fmt.Sprintf("run,%s,%s,%s,%d,%d", w.name, kind, p.duration, p.watchers, p.leases))
	if err != nil {
		return figure{err: err}
	}
	for line := range strings.Lines(out.stdout) {
		if j, ok := strings.CutPrefix(line, "CHILD-FIGURE "); ok {
			var wf wireFigure
			if err := json.Unmarshal([]byte(j), &wf); err != nil {
				return figure{err: fmt.Errorf("child %s/%s: %w", w.name, kind, err)}
			}
			return wf.figure()
		}
	}
	return figure{err: fmt.Errorf("child %s/%s: no figure: %s", w.name, kind, lastLines(out.stderr, 5))}
}

// memStatus reads VmRSS and VmHWM (KiB) from /proc/self/status.
func memStatus() (rss, hwm int64, err error) { return procMemStatus("self") }

// procMemStatus reads VmRSS and VmHWM (KiB) from /proc/PID/status, pid
// "self" for this process.
func procMemStatus(pid string) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch name {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%s/status", pid)
	}
	return rss, hwm, nil
}

// cpuTime returns the CPU time this process used so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childReport is what a child printed.
type childReport struct{ rss, hwm, base, ops, cpuMS int64 }

// childOutput is what a child printed.
type childOutput struct{ stdout, stderr string }

// spawnOutput runs this binary as a child with spec, to its end.
func spawnOutput(spec string) (childOutput, error) {
	exe, err := os.Executable()
	if err != nil {
		return childOutput{}, err
	}
	cmd := exec.Command(exe, childFlag+spec)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return childOutput{}, fmt.Errorf("child %s: %w: %s", spec, err, lastLines(stderr.String(), 5))
	}
	return childOutput{stdout.String(), stderr.String()}, nil
}

// spawn runs this binary as a child with spec and parses its report.
func spawn(spec string) (childReport, error) {
	out, err := spawnOutput(spec)
	if err != nil {
		return childReport{}, err
	}
	var r childReport
	for line := range strings.Lines(out.stdout) {
		if strings.HasPrefix(line, "CHILD ") {
			_, err := fmt.Sscanf(line, "CHILD rss=%d hwm=%d base=%d ops=%d cpu=%d", &r.rss, &r.hwm, &r.base, &r.ops, &r.cpuMS)
			return r, err
		}
	}
	return r, fmt.Errorf("child %s: no report: %s", spec, lastLines(out.stderr, 5))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// idleRSS: a child process starts a cluster of `members`, idles for p.idle
// and reports its RSS. The figure is what one member adds: the process's
// RSS less its RSS before the cluster started (the Go runtime and this
// binary, which links all three systems), divided by members.
func idleRSS(p params, kind string, members int) figure {
	r, err := spawn(fmt.Sprintf("idle,%s,%d,%s", kind, members, p.idle))
	if err != nil {
		return figure{err: err}
	}
	return figure{mem: memory{perMember: (r.rss - r.base) / int64(members), process: r.rss, base: r.base, what: "RSS"},
		note: fmt.Sprintf("idle CPU %.1f%% of one core", float64(r.cpuMS)/float64(p.idle.Milliseconds())*100)}
}

// putPeakRSS: a child process runs put-256 on 3 members and reports its
// peak RSS (VmHWM); the figure is per member, as for idleRSS.
func putPeakRSS(p params, kind string) figure {
	r, err := spawn(fmt.Sprintf("put256,%s,%s", kind, p.duration))
	if err != nil {
		return figure{err: err}
	}
	return figure{mem: memory{perMember: (r.hwm - r.base) / 3, process: r.hwm, base: r.base, what: "peak"},
		result: result{ops: r.ops, elapsed: p.duration}}
}

// mib formats KiB as MiB.
func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }
