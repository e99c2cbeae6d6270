//go:build coordkit_faults

package robustness

import (
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/coordkit/coordkit/coord/internal/hooks"
)

// The checkers must catch the bugs they check for, planted in coordkit
// through hooks that exist only in builds with the coordkit_faults tag:
// .ci/run runs these with it (go test -tags coordkit_faults).

func TestCheckerCatchesStaleReads(t *testing.T) {
	skip := func(member string) bool { return true } // no ReadIndex anywhere: followers read stale
	hooks.SkipReadIndex.Store(&skip)
	defer hooks.SkipReadIndex.Store(nil)
	rep := run(t, Scenario{Name: "stale", Seed: 21, Members: 3, Clients: 3, Duration: 3 * time.Second,
		Faults: []faultKind{faultIsolate}, Election: 500 * time.Millisecond, SnapEvery: 1000})
	if rep.Linearizable != porcupine.Illegal {
		t.Fatalf("stale reads went unnoticed: linearizability check says %s over %d ops", rep.Linearizable, rep.Ops)
	}
}

func TestCheckerCatchesDroppedWatchEvent(t *testing.T) {
	drop := func(member string, rev int64) bool { return member == "m1" && rev == 40 }
	hooks.DropWatchEvent.Store(&drop)
	defer hooks.DropWatchEvent.Store(nil)
	rep := run(t, Scenario{Name: "drop", Seed: 22, Members: 3, Clients: 2, Duration: 2 * time.Second,
		Faults: []faultKind{faultSlow}, Election: 500 * time.Millisecond, SnapEvery: 1000})
	found := false
	for _, v := range rep.Violations {
		found = found || strings.Contains(v, "member 1")
	}
	if !found {
		t.Fatalf("a dropped watch event went unnoticed; violations: %v", rep.Violations)
	}
}
