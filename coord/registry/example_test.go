package registry_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/registry"
)

// openNode opens a one-member cluster in a temporary directory for an
// example; done closes it and removes the directory.
func openNode() (n *coord.Node, done func()) {
	dir, _ := os.MkdirTemp("", "registry-example-")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	n, err := coord.Open(context.Background(), coord.Config{DataDir: dir, RaftAddress: addr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	return n, func() { n.Close(); os.RemoveAll(dir) }
}

func ExampleRegistry_Register() {
	n, done := openNode()
	defer done()
	ctx := context.Background()

	r := registry.New(n, "/services")
	reg, err := r.Register(ctx, registry.Instance{Service: "billing", ID: "b1", Addr: "10.0.0.5:8080"})
	if err != nil {
		log.Fatal(err)
	}
	found, _ := r.Lookup(ctx, "billing", registry.PassingOnly())
	fmt.Println(found[0].ID, found[0].Addr, found[0].Status)
	reg.SetStatus(ctx, registry.Critical)
	found, _ = r.Lookup(ctx, "billing", registry.PassingOnly())
	fmt.Println("passing after a critical check:", len(found))
	reg.Deregister(ctx)
	// Output:
	// b1 10.0.0.5:8080 passing
	// passing after a critical check: 0
}

// A registration that outlives its session: after a pause or a partition
// longer than its TTL, it registers again by itself, and Events says so.
func ExampleKeepRegistered() {
	n, done := openNode()
	defer done()
	ctx := context.Background()

	r := registry.New(n, "/services")
	reg, err := r.Register(ctx, registry.Instance{Service: "billing", ID: "b1", Addr: "10.0.0.5:8080"},
		registry.WithTTL(3*time.Second), registry.KeepRegistered(0, 0))
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Deregister(ctx)
	go func() {
		for ev := range reg.Events() {
			_ = ev // log each loss (ev.Err) and recovery (ev.Revision)
		}
	}()
	found, _ := r.Lookup(ctx, "billing")
	fmt.Println(found[0].ID, found[0].Status)
	// Output: b1 passing
}
