package raftnode

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// A member whose write lane is full (maxInFlight writes in flight) still
// renews its leases: keep-alives take their own request clients, so a
// flood of writes cannot let sessions expire. A write meanwhile waits for a
// request client and gives up at its deadline.
func TestKeepAliveDoesNotWaitBehindWrites(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := startOne(t, Config{})
	defer h.Close()
	ready(t, ctx, h)
	s := h.Shards()[0]
	put := &sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpPut, Key: "/lane/k", Value: []byte("v")}}}}
	if res, err := s.Propose(ctx, &sm.Command{Kind: sm.CmdGrant, LeaseID: 7, TTL: 10_000}); err != nil || res.Code != sm.CodeOK {
		t.Fatalf("grant: %v %v", res, err)
	}
	held := make([]*requestClient, 0, maxInFlight)
	for range maxInFlight { // as if maxInFlight writes were in flight
		held = append(held, <-s.clients)
	}
	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer wcancel()
	if _, err := s.Propose(wctx, put); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("put with every write request client busy: %v, want a deadline error", err)
	}
	if res, err := s.Propose(ctx, &sm.Command{Kind: sm.CmdKeepAlive, LeaseID: 7}); err != nil || res.Code != sm.CodeOK {
		t.Fatalf("keep-alive with every write request client busy: %v %v", res, err)
	}
	for _, rc := range held {
		s.clients <- rc
	}
	if _, err := s.Propose(ctx, put); err != nil {
		t.Fatalf("put after the writes finished: %v", err)
	}
}
