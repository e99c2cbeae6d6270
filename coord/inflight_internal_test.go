package coord

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A member whose write lane is full (maxInFlight writes in flight) still
// renews its leases: keep-alives take their own request clients, so a
// flood of writes cannot let sessions expire. A write meanwhile waits for a
// request client and gives up at its deadline.
func TestKeepAliveDoesNotWaitBehindWrites(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := openOne(t, Config{HeartbeatInterval: 20 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond})
	defer n.Close()
	if err := n.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	g, err := n.Grant(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := n.leaseHome(g.ID)
	held := make([]*requestClient, 0, maxInFlight)
	for range maxInFlight { // as if maxInFlight writes were in flight
		held = append(held, <-s.clients)
	}
	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer wcancel()
	if _, err := n.Put(wctx, "/lane/k", []byte("v")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("put with every write request client busy: %v, want a deadline error", err)
	}
	if _, err := n.KeepAliveOnce(ctx, g.ID); err != nil {
		t.Fatalf("keep-alive with every write request client busy: %v", err)
	}
	for _, rc := range held {
		s.clients <- rc
	}
	if _, err := n.Put(ctx, "/lane/k", []byte("v")); err != nil {
		t.Fatalf("put after the writes finished: %v", err)
	}
}
