package coord_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// openExample opens a single-member cluster in a temporary directory.
func openExample() (*coord.Node, func()) {
	dir, err := os.MkdirTemp("", "coord-example-")
	if err != nil {
		log.Fatal(err)
	}
	l, err := freeListener()
	if err != nil {
		log.Fatal(err)
	}
	n, err := coord.Open(context.Background(), coord.Config{DataDir: dir, RaftAddress: l, Logger: quietLogger(),
		HeartbeatInterval: 20 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	if err := n.Ready(context.Background()); err != nil {
		log.Fatal(err)
	}
	return n, func() { n.Close(); os.RemoveAll(dir) }
}

func ExampleOpen() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "coord-example-")
	defer os.RemoveAll(dir)
	addr, _ := freeListener()
	// A Config with a DataDir is a working single-member cluster.
	n, err := coord.Open(ctx, coord.Config{DataDir: dir, RaftAddress: addr, Logger: quietLogger()})
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Put(ctx, "/greeting", []byte("hello")); err != nil {
		log.Fatal(err)
	}
	g, err := n.Get(ctx, "/greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", g.KVs[0].Value)
	// Output: hello
}

func ExampleNode_Txn() {
	n, done := openExample()
	defer done()
	ctx := context.Background()
	put, _ := n.Put(ctx, "/cfg/limit", []byte("10"))
	// Compare-and-swap on the key's ModRevision: only one of two writers
	// that read the same revision wins.
	for _, v := range []string{"20", "30"} {
		r, err := n.Txn(ctx).
			If(coord.Compare(coord.ModRevision("/cfg/limit"), "=", put.Header.Revision)).
			Then(coord.OpPut("/cfg/limit", []byte(v))).
			Commit()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("set %s: %v\n", v, r.Succeeded)
	}
	// Output:
	// set 20: true
	// set 30: false
}

func ExampleNode_Watch() {
	n, done := openExample()
	defer done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, _ := n.Put(ctx, "/jobs/1", []byte("queued"))
	n.Put(ctx, "/jobs/1", []byte("running"))
	n.Delete(ctx, "/jobs/1")
	// Replay from an old revision, then continue live.
	w := n.Watch(ctx, "/jobs/", coord.WithPrefix(), coord.WithRev(first.Header.Revision))
	seen := 0
	for resp := range w {
		for _, ev := range resp.Events {
			fmt.Println(ev.Type, ev.KV.Key, string(ev.KV.Value))
			seen++
		}
		if seen == 3 {
			break
		}
	}
	// Output:
	// PUT /jobs/1 queued
	// PUT /jobs/1 running
	// DELETE /jobs/1
}

func ExampleNode_NewSession() {
	n, done := openExample()
	defer done()
	ctx := context.Background()
	s, err := n.NewSession(ctx, coord.WithTTL(time.Second))
	if err != nil {
		log.Fatal(err)
	}
	// The key lives as long as the session: Close revokes its lease.
	n.Put(ctx, "/members/me", []byte("10.0.0.7:8080"), coord.WithLease(s.Lease()))
	g, _ := n.Get(ctx, "/members/", coord.WithPrefix(), coord.WithCountOnly())
	fmt.Println("while open:", g.Count)
	s.Close(ctx)
	g, _ = n.Get(ctx, "/members/", coord.WithPrefix(), coord.WithCountOnly())
	fmt.Println("after Close:", g.Count)
	// Output:
	// while open: 1
	// after Close: 0
}
