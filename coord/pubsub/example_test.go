package pubsub_test

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
	"github.com/coordkit/coordkit/coord/pubsub"
)

// openNode opens a single-member cluster in a temporary directory; close
// it with the function returned.
func openNode(ctx context.Context) (*coord.Node, func()) {
	dir, _ := os.MkdirTemp("", "pubsub-example-")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	n, err := coord.Open(ctx, coord.Config{DataDir: dir, RaftAddress: addr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	return n, func() { n.Close(); os.RemoveAll(dir) }
}

func ExamplePubSub_Subscribe() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, closeNode := openNode(ctx)
	defer closeNode()

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

func ExamplePubSub_Publish_deduplicated() {
	ctx := context.Background()
	n, closeNode := openNode(ctx)
	defer closeNode()

	ps := pubsub.New(n, "/topics")
	first, err := ps.Publish(ctx, "payments", []byte("charge order 42"), pubsub.WithMsgID("charge-42"))
	if err != nil {
		log.Fatal(err)
	}
	// Publishing the ID again within the topic's duplicate window (say, a
	// retry after coord.ErrOutcomeUnknown) stores nothing.
	again, err := ps.Publish(ctx, "payments", []byte("charge order 42"), pubsub.WithMsgID("charge-42"))
	if err != nil {
		log.Fatal(err)
	}
	st, _ := ps.Stats(ctx, "payments")
	fmt.Println(again == first, st.Messages)
	// Output: true 1
}

func ExamplePubSub_RunRetention() {
	ctx := context.Background()
	n, closeNode := openNode(ctx)
	defer closeNode()

	ps := pubsub.New(n, "/topics")
	ps.SetRetention(ctx, "metrics", pubsub.Retention{MaxMessages: 2})
	for _, v := range []string{"1", "2", "3", "4"} {
		ps.Publish(ctx, "metrics", []byte(v))
	}
	// Run the runner on every member: the one leading the topics' shard
	// trims. Here it stops after its first trim.
	rctx, stop := context.WithCancel(ctx)
	err := ps.RunRetention(rctx, time.Second, pubsub.OnTrim(func(topic string, removed int, err error) {
		fmt.Println("trimmed", topic, removed, err)
		stop()
	}))
	fmt.Println(err)
	st, _ := ps.Stats(ctx, "metrics")
	fmt.Println(st.Messages, st.Removed)
	// Output:
	// trimmed metrics 2 <nil>
	// context canceled
	// 2 2
}
