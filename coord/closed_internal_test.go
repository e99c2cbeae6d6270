package coord

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
	"weak"
)

// A closed Node is collected once its user drops it, store and all, though
// dragonboat keeps the first NodeHost of a process reachable after Close
// (see leaderListener). The test holds on to its NodeHost, as dragonboat
// would if it were the first, whichever test runs first.
func TestClosedNodeIsCollected(t *testing.T) {
	n := openOne(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 100 {
		if _, err := n.Put(ctx, fmt.Sprintf("/c/%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	node, machine := weak.Make(n), weak.Make(n.shards[0].machine.Load())
	nh := n.nh
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = nil
	deadline := time.Now().Add(10 * time.Second)
	for node.Value() != nil || machine.Value() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("after Close and 10 s of GCs: node collected %v, state machine collected %v",
				node.Value() == nil, machine.Value() == nil)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(nh)
}
