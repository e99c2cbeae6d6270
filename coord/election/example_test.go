package election_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/election"
)

// openNode opens a one-member cluster in a temporary directory for an
// example; done closes it and removes the directory.
func openNode() (n *coord.Node, done func()) {
	dir, _ := os.MkdirTemp("", "election-example-")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	n, err := coord.Open(context.Background(), coord.Config{DataDir: dir, RaftAddress: addr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	return n, func() { n.Close(); os.RemoveAll(dir) }
}

func ExampleElection_Campaign() {
	n, done := openNode()
	defer done()
	ctx := context.Background()
	s, _ := n.NewSession(ctx)
	defer s.Close(ctx)

	e := election.New(s, "/scheduler/leader")
	if err := e.Campaign(ctx, []byte("host-a")); err != nil {
		log.Fatal(err)
	}
	leader, _ := e.Leader(ctx)
	fmt.Printf("leader: %s\n", leader.Value)
	e.Proclaim(ctx, []byte("host-a (draining)"))
	leader, _ = e.Leader(ctx)
	fmt.Printf("leader: %s\n", leader.Value)
	e.Resign(ctx)
	_, err := e.Leader(ctx)
	fmt.Println(err)
	// Output:
	// leader: host-a
	// leader: host-a (draining)
	// election: no leader
}

// Run keeps a job running on exactly one process, campaigning again
// whenever leadership is lost; here the job ends its term itself.
func ExampleRun() {
	n, done := openNode()
	defer done()
	ctx := context.Background()

	ctx, stop := context.WithCancel(ctx)
	terms := 0
	err := election.Run(ctx, n, "/scheduler/leader", []byte("host-a"), func(ctx context.Context, t election.Term) error {
		terms++
		fmt.Printf("term %d leads with a fence\n", terms)
		// Work until ctx ends; it ends at once if leadership is lost.
		// Here each term ends itself: Run resigns and stands again.
		if terms == 2 {
			stop()
		}
		return nil
	})
	fmt.Println(err)
	// Output:
	// term 1 leads with a fence
	// term 2 leads with a fence
	// context canceled
}
