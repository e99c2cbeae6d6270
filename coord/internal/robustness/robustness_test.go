package robustness

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

var (
	long      = flag.Bool("robustness.long", false, "run the long profile: -robustness.scenarios random scenarios")
	scenarios = flag.Int("robustness.scenarios", 120, "scenarios in the long profile")
	duration  = flag.Duration("robustness.duration", 4*time.Second, "traffic time per scenario")
	seed      = flag.Int64("robustness.seed", 1, "first seed of the long profile")
	record    = flag.String("robustness.record", "", "append a record of the run (date, commit, machine, totals) to this file, e.g. RESULTS.md (TestRobustness, TestMembersKilledWithSIGKILL)")
)

// shortProfile covers every fault kind with fixed seeds; it runs in CI.
func shortProfile() []Scenario {
	d := 3 * time.Second
	return []Scenario{
		{Name: "1m-restart", Seed: 11, Members: 1, Clients: 3, Duration: d, Faults: []faultKind{faultRestart}, Election: 500 * time.Millisecond, SnapEvery: 50},
		{Name: "3m-restart-leader", Seed: 12, Members: 3, Clients: 2, Duration: d, Faults: []faultKind{faultRestartLeader, faultRestart}, Election: 750 * time.Millisecond, SnapEvery: 200},
		{Name: "3m-isolate-slow", Seed: 13, Members: 3, Clients: 2, Duration: d, Faults: []faultKind{faultIsolate, faultIsolateLeader, faultSlow}, Election: 500 * time.Millisecond, SnapEvery: 50},
		{Name: "3m-power-loss", Seed: 14, Members: 3, Clients: 2, Duration: 2 * d, Faults: []faultKind{faultPowerLoss, faultPowerLossLeader, faultPowerLossAll}, Election: 500 * time.Millisecond, SnapEvery: 50},
		{Name: "3m-quota-restart", Seed: 15, Members: 3, Clients: 2, Duration: d, Faults: []faultKind{faultQuota, faultRestart}, Election: 500 * time.Millisecond, SnapEvery: 200},
	}
}

func TestRobustness(t *testing.T) {
	var list []Scenario
	if *long {
		for i := 0; i < *scenarios; i++ {
			list = append(list, randomScenario(*seed+int64(i), *duration))
		}
	} else {
		list = shortProfile()
	}
	var total Report
	serial, lost, threeVoters := 0, 0, 0
	start, at := time.Now(), commit() // the commit when the run starts: the one built
	for _, sc := range list {
		if sc.Members == 3 {
			threeVoters++
		}
		t.Run(sc.Name, func(t *testing.T) {
			rep := run(t, sc)
			t.Logf("%s: ops=%d unknown=%d serializable=%d watch-events=%d faults=%d nospace-refusals=%d compacted-to=%d linearizable=%s violations=%d",
				sc.Name, rep.Ops, rep.Unknown, rep.SerialReads, rep.WatchEvents, rep.FaultsInjected, rep.NoSpace, rep.Compacted, rep.Linearizable, len(rep.Violations))
			if !*long && slices.Contains(sc.Faults, faultQuota) && (rep.NoSpace == 0 || rep.Compacted <= 1) {
				t.Errorf("%s: the quota fault did not take effect: %d writes refused, history compacted to %d", sc.Name, rep.NoSpace, rep.Compacted)
			}
			total.Ops += rep.Ops
			total.Unknown += rep.Unknown
			total.WatchEvents += rep.WatchEvents
			total.FaultsInjected += rep.FaultsInjected
			total.Acked += rep.Acked
			total.Lost += rep.Lost
			serial += rep.SerialReads
			total.Violations = append(total.Violations, rep.Violations...)
			if rep.Linearizable == porcupine.Unknown {
				lost++
				t.Logf("%s: linearizability check timed out (inconclusive)", sc.Name)
			}
			if len(rep.Violations) > 0 {
				path := visualize(t, sc.Name, rep)
				t.Errorf("%s (seed %d): %d violations, first: %s; history: %s", sc.Name, sc.Seed, len(rep.Violations), rep.Violations[0], path)
			}
		})
	}
	t.Logf("SUMMARY scenarios=%d ops=%d unknown=%d watch-events=%d faults=%d acked-writes=%d lost=%d violations=%d",
		len(list), total.Ops, total.Unknown, total.WatchEvents, total.FaultsInjected, total.Acked, total.Lost, len(total.Violations))
	if *record != "" {
		kinds := map[string]int{}
		for _, sc := range list {
			for _, f := range sc.Faults {
				kinds[f.String()]++
			}
		}
		var drawn []string
		for k, n := range kinds {
			drawn = append(drawn, fmt.Sprintf("%s %d", k, n))
		}
		sort.Strings(drawn)
		profile := "the short profile"
		if *long {
			profile = fmt.Sprintf("`-robustness.long -robustness.scenarios %d -robustness.duration %v -robustness.seed %d`", *scenarios, *duration, *seed)
		}
		checks := "every linearizability check completed"
		if lost > 0 {
			checks = fmt.Sprintf("%d linearizability checks timed out (inconclusive)", lost)
		}
		entry := fmt.Sprintf("\n### %s\n\nAt commit `%s`, on %s (%d CPUs), with %s:\n\n"+
			"| scenarios | 3 voters / 1 voter | operations | of unknown outcome | serializable reads | faults injected | watch events checked | acknowledged writes checked | of them lost | violations |\n"+
			"|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n| %d | %d / %d | %d | %d | %d | %d | %d | %d | %d | %d |\n\n"+
			"Fault kinds drawn: %s; %s. %.0f s in all.\n",
			time.Now().UTC().Format("2006-01-02 15:04 UTC"), at, runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), profile,
			len(list), threeVoters, len(list)-threeVoters, total.Ops, total.Unknown, serial, total.FaultsInjected, total.WatchEvents,
			total.Acked, total.Lost, len(total.Violations), strings.Join(drawn, ", "), checks, time.Since(start).Seconds())
		appendRecord(t, entry)
	}
}

// appendRecord appends entry to the -robustness.record file.
func appendRecord(t *testing.T, entry string) {
	f, err := os.OpenFile(*record, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err == nil {
		_, err = f.WriteString(entry)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		t.Errorf("recording the run in %s: %v", *record, err)
	}
}

// commit names the checked-out commit, with "+changes" when the tree has
// uncommitted changes to Go files; "unknown" without git.
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if diff, err := exec.Command("git", "status", "--porcelain", "--", "*.go").Output(); err == nil && len(diff) > 0 {
		c += "+changes"
	}
	return c
}

// visualize writes porcupine's HTML view of the history under results/.
func visualize(t *testing.T, name string, rep *Report) string {
	dir := "results"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("results dir: %v", err)
		return ""
	}
	path := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_", "[", "", "]", "").Replace(name)+".html")
	if err := porcupine.VisualizePath(kvModel(), rep.info, path); err != nil {
		t.Logf("visualize: %v", err)
		return ""
	}
	return path
}

// The checkers must catch what they check: each catch test injects one
// fault into coordkit through a test-only hook and expects a violation.
// Those planting bugs in coordkit itself are in faults_test.go, built only
// with the coordkit_faults tag (.ci/run runs them).

func TestCheckerCatchesBrokenModel(t *testing.T) {
	rep := run(t, Scenario{Name: "model", Seed: 23, Members: 1, Clients: 3, Duration: time.Second,
		Faults: []faultKind{faultSlow}, Election: 500 * time.Millisecond, SnapEvery: 1000})
	if rep.Linearizable != porcupine.Ok {
		t.Fatalf("the real model rejects a fault-free history: %s, %v", rep.Linearizable, rep.Violations)
	}
	nm := kvNondeterministic()
	nm.Step = func(state, in, out interface{}) []interface{} {
		if i := in.(input); i.Kind == opPut {
			return []interface{}{state} // a model that forgets puts
		}
		return step(state, in, out)
	}
	if porcupine.CheckOperations(nm.ToModel(), rep.history) {
		t.Fatal("a model that forgets puts accepted a real history: the checker is not checking")
	}
}
