package raftnode

import (
	"context"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// A closed Host is collected once its user drops it, with its state
// machines and what their listeners hold (coord's Node, store and all),
// though dragonboat keeps the first NodeHost of a process reachable after
// Close (see Host.self). The test holds on to its NodeHost, as dragonboat
// would if it were the first, whichever test runs first.
func TestClosedHostIsCollected(t *testing.T) {
	type big struct {
		quiet
		_ [1 << 20]byte // weight, so that a leak shows
	}
	l := &big{}
	h := startOne(t, Config{Listener: func(int) sm.Listener { return l }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ready(t, ctx, h)
	for range 100 {
		cmd := &sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpPut, Key: "/c", Value: []byte("v")}}}}
		if _, err := h.Shards()[0].Propose(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	host, machine, listener := weak.Make(h), weak.Make(h.Shards()[0].Machine()), weak.Make(l)
	nh := h.nh
	h.Close()
	h, l = nil, nil
	deadline := time.Now().Add(10 * time.Second)
	for host.Value() != nil || machine.Value() != nil || listener.Value() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("after Close and 10 s of GCs: host collected %v, state machine collected %v, listener collected %v",
				host.Value() == nil, machine.Value() == nil, listener.Value() == nil)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(nh)
}
