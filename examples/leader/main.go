// Command leader runs one worker per member of a 3-member cluster; the
// workers elect a leader, only the leader works, and when the leader's
// member goes away another worker takes over.
//
//	go run ./examples/leader
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/election"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := coordtest.Start(ctx, 3)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	nodes := c.Nodes()

	elected := make(chan string, 3)
	for i, n := range nodes {
		name := fmt.Sprintf("worker-%d", i)
		go worker(ctx, n, name, elected)
	}
	first := <-elected
	fmt.Printf("%s leads\n", first)

	// Watch from a member that stays up.
	var observer *coord.Node
	var leaderNode int
	fmt.Sscanf(first, "worker-%d", &leaderNode)
	observer = nodes[(leaderNode+1)%3]
	s, err := observer.NewSession(ctx)
	if err != nil {
		log.Fatal(err)
	}
	obs := election.New(s, "/workers/leader").Observe(ctx)
	<-obs // the current leader

	start := time.Now()
	fmt.Printf("closing %s's member\n", first)
	nodes[leaderNode].Close()
	for o := range obs {
		if o.Leader != nil && string(o.Leader.Value) != first {
			fmt.Printf("%s took over after %v (fencing token %d)\n", o.Leader.Value, time.Since(start).Round(10*time.Millisecond), o.Leader.Fence)
			break
		}
	}
	<-elected
}

// worker campaigns; once elected it does its work until its term ends.
func worker(ctx context.Context, n *coord.Node, name string, elected chan<- string) {
	s, err := n.NewSession(ctx, coord.WithTTL(5*time.Second))
	if err != nil {
		return
	}
	e := election.New(s, "/workers/leader")
	if err := e.Campaign(ctx, []byte(name)); err != nil {
		return
	}
	elected <- name
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			// Work guarded by leadership: this write happens only during
			// this worker's term.
			n.Txn(ctx).If(e.IsLeader()).Then(coord.OpPut("/workers/progress", []byte(name))).Commit()
		case <-e.Done():
			return
		case <-ctx.Done():
			return
		}
	}
}
