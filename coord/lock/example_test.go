package lock_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/lock"
)

func openNode() (*coord.Node, func()) {
	dir, _ := os.MkdirTemp("", "lock-example-")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	n, err := coord.Open(context.Background(), coord.Config{DataDir: dir, RaftAddress: addr,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	return n, func() { n.Close(); os.RemoveAll(dir) }
}

func ExampleMutex_Lock() {
	n, done := openNode()
	defer done()
	ctx := context.Background()
	s, err := n.NewSession(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)

	m := lock.NewMutex(s, "/accounts/lock")
	if err := m.Lock(ctx); err != nil {
		log.Fatal(err)
	}
	// Write only while the lock is held: the Txn fails if it was lost.
	r, err := n.Txn(ctx).If(m.IsOwner()).Then(coord.OpPut("/accounts/alice", []byte("100"))).Commit()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("guarded write:", r.Succeeded, "fence > 0:", m.Fence() > 0)
	if err := m.Unlock(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: guarded write: true fence > 0: true
}

func ExampleMutex_TryLock() {
	n, done := openNode()
	defer done()
	ctx := context.Background()
	s, _ := n.NewSession(ctx)
	defer s.Close(ctx)
	a, b := lock.NewMutex(s, "/jobs/lock"), lock.NewMutex(s, "/jobs/lock")
	fmt.Println(a.TryLock(ctx))
	fmt.Println(b.TryLock(ctx))
	// Output:
	// <nil>
	// lock: held by another owner
}
