package pubsub_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/pubsub"
)

func ExamplePubSub_Subscribe() {
	dir, _ := os.MkdirTemp("", "pubsub-example-")
	defer os.RemoveAll(dir)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := coord.Open(ctx, coord.Config{DataDir: dir, RaftAddress: addr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()

	ps := pubsub.New(n, "/topics")
	ps.Publish(ctx, "events", []byte("signup"))
	ps.PublishBatch(ctx, "events", [][]byte{[]byte("login"), []byte("logout")})
	// Replay from the oldest retained message, then follow live ones.
	sub := ps.Subscribe(ctx, "events", pubsub.FromEarliest())
	for i := 0; i < 3; i++ {
		d := <-sub
		fmt.Println(string(d.Payload))
	}
	// Output:
	// signup
	// login
	// logout
}
