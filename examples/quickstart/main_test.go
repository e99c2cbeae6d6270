package main

import (
	"bytes"
	"regexp"
	"testing"
)

// The quickstart prints what the README shows (the lease ID and the time
// the lease took to expire vary). Its watch starts after the put it
// reports, so the first event is always the compare-and-swap, whichever
// member lags.
func TestQuickstartPrintsTheWalkthrough(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	want := regexp.MustCompile(`^cluster up: 3 members
put /config/color=blue on a at revision 2
get /config/color on b: blue \(version 1\)
txn: swap blue->green if unchanged since revision 2: succeeded=true
txn: the same swap again \(stale revision\): succeeded=false
watch on c: PUT /config/color blue -> green
granted lease [0-9a-f]+ \(TTL 2s\), attached /config/owner
watch on c: DELETE /config/owner after [0-9.]+s: the lease expired
keys left under /config/: 1 \(/config/color=green\)
$`)
	if !want.Match(out.Bytes()) {
		t.Fatalf("quickstart printed:\n%s", out.String())
	}
}
