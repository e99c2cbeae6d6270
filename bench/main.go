// Command bench measures coordkit side by side with embedded etcd v3.7.3 and
// with raw dragonboat running a trivial state machine. Run from this
// directory:
//
//	go run . -workload all                 # every workload, every system, one table
//	go run . -workload put-256,get-lin     # some workloads
//	go run . -workload put-256 -systems coordkit -duration 10s -cpuprofile cpu.out
//	go run . -workload shards              # coordkit's shard-count trade-off
//	go run . -workload peers               # what each observer costs the leader
//	go run . -workload fleet -svg fleet.svg # 3 voters and 0 to 100 observer processes
//
// The systems run one after another, each workload on a fresh cluster with
// its data in a temporary directory, and each such case in a child process
// of its own (this binary, re-executed): a system that closed can leave
// memory held and work running that would slow the next one down. With
// -cpuprofile, -memprofile, -trace or -same-process every case runs in this
// process instead. Figures are from one run on the machine it runs on;
// compare ratios, not absolute numbers, on a shared or noisy machine.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"time"
)

func main() {
	if spec, ok := childSpec(os.Args[1:]); ok {
		os.Exit(runChild(spec))
	}
	p := defaultParams()
	workload := flag.String("workload", "all", "workloads to run, comma-separated: all, shards, peers, fleet, steady, or names from the list below")
	systems := flag.String("systems", strings.Join(allSystems, ","), "systems to run, comma-separated: coordkit, etcd, raw, and coordkit-v3 (coordkit behind etcd's API and clientv3: put-256, get-lin and watch-1 only)")
	flag.DurationVar(&p.duration, "duration", p.duration, "measured time per timed case (shards: default 5s; peers: default 20s)")
	flag.IntVar(&p.watchers, "watchers", p.watchers, "watchers in watch-10k")
	flag.IntVar(&p.leases, "leases", p.leases, "leases in lease-10k")
	flag.DurationVar(&p.idle, "idle", p.idle, "idle time before reading a child's RSS")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memprofile := flag.String("memprofile", "", "write an allocation profile of the whole run to this file")
	traceFile := flag.String("trace", "", "write an execution trace of the whole run to this file (large: keep -duration short)")
	svg := flag.String("svg", "", "also write a bar chart of coordkit/etcd ratios to this SVG file")
	pc := defaultPeersConfig()
	observers := flag.String("observers", "", "peers, fleet: observer counts, comma-separated, one fleet each (0 is the base of the per-observer and CPU figures; default 0,10,40 for peers, 0,10,25,50,100 for fleet)")
	fc := defaultFleetConfig()
	flag.DurationVar(&fc.grace, "grace", fc.grace, "fleet: the voters' --observer-grace-period")
	flag.IntVar(&fc.clients, "clients", fc.clients, "fleet: closed-loop clients")
	flag.IntVar(&fc.startups, "startups", fc.startups, "fleet: start-ups measured of a fresh single member and of an observer joining an idle cluster (0: none)")
	flag.IntVar(&pc.rate, "rate", pc.rate, "peers: writes per second, paced")
	flag.StringVar(&pc.profileDir, "leader-cpuprofile-dir", "", "peers: write the leader's CPU profile over each measured window to this directory, as leader-cpu-N.pprof for N observers")
	flag.StringVar(&pc.memberBin, "member-bin", "", "peers: a built cmd/coordkit to run (default: build one, which needs the go command and bench/ as working directory)")
	sameProcess := flag.Bool("same-process", false, "run every case in this process, one after another, instead of each in a child process of its own (implied by -cpuprofile, -memprofile and -trace)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: bench [flags]\n\nworkloads:\n")
		for _, w := range workloads() {
			fmt.Fprintf(flag.CommandLine.Output(), "  %-21s %s\n", w.name, w.desc)
		}
		fmt.Fprintf(flag.CommandLine.Output(), "  %-21s %s\n", "shards", "coordkit puts at 1, 2, 4 and 8 shards (separate table)")
		fmt.Fprintf(flag.CommandLine.Output(), "  %-21s %s\n", "peers", "coordkit leader heap and CPU per write with -observers observers, member processes (separate table)")
		fmt.Fprintf(flag.CommandLine.Output(), "  %-21s %s\n", "steady", "coordkit and etcd: Go heap and RSS per member after each eighth of -duration (default 40s) of overwrites of a fixed key set (separate table)")
		fmt.Fprintf(flag.CommandLine.Output(), "  %-21s %s\n\nflags:\n", "fleet", "3 voters and -observers observers as member processes: join, idle, paced writes watched from every observer, closed loop, SIGKILLs (separate tables)")
		flag.PrintDefaults()
	}
	flag.Parse()

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			log.Fatal(err)
		}
		if err := trace.Start(f); err != nil {
			log.Fatal(err)
		}
		defer func() {
			trace.Stop()
			f.Close()
		}()
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 64 << 10
		defer func() {
			f, err := os.Create(*memprofile)
			if err != nil {
				log.Fatal(err)
			}
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				log.Fatal(err)
			}
			f.Close()
		}()
	}
	fmt.Printf("# coordkit bench: %s, %d CPUs, %s/%s, %s, %s\n\n", *workload, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH,
		runtime.Version(), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	if *workload == "shards" {
		d := 5 * time.Second // the shard table in the README was measured with 5s
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "duration" {
				d = p.duration
			}
		})
		if err := shardsWorkload(d, os.Stdout); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *workload == "peers" {
		pc.duration = 20 * time.Second
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "duration" {
				pc.duration = p.duration
			}
		})
		var err error
		if pc.observers, err = parseObservers(cmp.Or(*observers, "0,10,40")); err != nil {
			log.Fatal(err)
		}
		pc.progress = os.Stderr
		if _, err := peersWorkload(pc, os.Stdout); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *workload == "steady" {
		d := 40 * time.Second
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "duration" {
				d = p.duration
			}
		})
		sys := strings.Split(*systems, ",")
		sys = slices.DeleteFunc(sys, func(s string) bool { return s != sysCoordkit && s != sysEtcd })
		if err := steadyWorkload(d, sys, os.Stdout); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *workload == "fleet" {
		flag.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "duration":
				fc.duration = p.duration
			case "rate":
				fc.rate = pc.rate
			case "member-bin":
				fc.memberBin = pc.memberBin
			}
		})
		var err error
		if fc.observers, err = parseObservers(cmp.Or(*observers, "0,10,25,50,100")); err != nil {
			log.Fatal(err)
		}
		fc.progress = os.Stderr
		var chart io.Writer
		if *svg != "" {
			f, err := os.Create(*svg)
			if err != nil {
				log.Fatal(err)
			}
			defer f.Close()
			chart = f
		}
		if _, _, err := fleetWorkload(fc, os.Stdout, chart); err != nil {
			log.Fatal(err)
		}
		return
	}
	ws, err := selectWorkloads(*workload)
	if err != nil {
		log.Fatal(err)
	}
	sys := strings.Split(*systems, ",")
	for _, s := range sys {
		if !slices.Contains(knownSystems, s) {
			log.Fatalf("unknown system %q (want coordkit, etcd, raw or coordkit-v3)", s)
		}
	}
	sys = slices.DeleteFunc(slices.Clone(knownSystems), func(s string) bool { return !slices.Contains(sys, s) })
	isolate := !*sameProcess && *cpuprofile == "" && *memprofile == "" && *traceFile == ""
	if !isolate {
		fmt.Println("Every case runs in this process: what one leaves behind weighs on the next.")
		fmt.Println()
	}
	start := time.Now()
	res := runAll(p, ws, sys, isolate, os.Stderr)
	writeTable(os.Stdout, ws, sys, res)
	if slices.Contains(sys, sysCoordkit) {
		fmt.Println()
		writeTargets(os.Stdout, res)
	}
	fmt.Printf("\ntotal time %s\n", time.Since(start).Round(time.Second))
	if *svg != "" {
		f, err := os.Create(*svg)
		if err != nil {
			log.Fatal(err)
		}
		writeSVG(f, ws, res)
		if err := f.Close(); err != nil {
			log.Fatal(err)
		}
	}
}

// selectWorkloads resolves -workload.
func selectWorkloads(spec string) ([]workload, error) {
	all := workloads()
	if spec == "all" {
		return all, nil
	}
	var out []workload
	for _, name := range strings.Split(spec, ",") {
		i := slices.IndexFunc(all, func(w workload) bool { return w.name == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown workload %q (see -h)", name)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// runAll runs each workload against each system in turn, logging progress.
func runAll(p params, ws []workload, systems []string, isolate bool, progress io.Writer) results {
	res := results{}
	for _, w := range ws {
		res[w.name] = map[string]figure{}
		for _, s := range systems {
			t0 := time.Now()
			f, skipped := runOne(p, w, s, isolate)
			res[w.name][s] = f
			if !skipped {
				fmt.Fprintf(progress, "%-21s %-9s %s (%s)\n", w.name, s, cell(f, w.metric), time.Since(t0).Round(100*time.Millisecond))
				if f.firstErr != nil {
					fmt.Fprintf(progress, "%-21s %-9s first error: %v\n", "", "", f.firstErr)
				}
			}
		}
	}
	return res
}

// runOne runs workload w against system s, in a child process of its own
// when isolate is set, or says why it has no figure.
func runOne(p params, w workload, s string, isolate bool) (figure, bool) {
	if why, ok := w.na[s]; ok {
		return figure{na: why}, true
	}
	if isolate && w.body != nil {
		return runInChild(p, w, s), false
	}
	return w.run(p, s), false
}
