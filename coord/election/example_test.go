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

func ExampleElection_Campaign() {
	dir, _ := os.MkdirTemp("", "election-example-")
	defer os.RemoveAll(dir)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	ctx := context.Background()
	n, err := coord.Open(ctx, coord.Config{DataDir: dir, RaftAddress: addr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()
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
	_, err = e.Leader(ctx)
	fmt.Println(err)
	// Output:
	// leader: host-a
	// leader: host-a (draining)
	// election: no leader
}
