// Command workqueue publishes jobs to a topic and processes them with a
// consumer group of three workers, one per member: each job goes to one
// worker. One worker's member then closes mid-way; the jobs it had claimed
// but not finished go to the others, so no job is lost.
//
//	go run ./examples/workqueue
package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/pubsub"
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

	const jobs = 1000
	producer := pubsub.New(nodes[0], "/topics")
	for b := 0; b < jobs/100; b++ {
		batch := make([][]byte, 100)
		for i := range batch {
			batch[i] = []byte(fmt.Sprintf("job-%d", b*100+i))
		}
		if _, err := producer.PublishBatch(ctx, "jobs", batch); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("published %d jobs\n", jobs)

	var mu sync.Mutex
	done := map[string]int{}
	perWorker := make([]int, 3)
	finished := make(chan struct{})
	var once sync.Once
	for w, n := range nodes {
		member, err := pubsub.New(n, "/topics").JoinGroup(ctx, "jobs", "workers")
		if err != nil {
			log.Fatal(err)
		}
		defer member.Close(context.Background())
		go func() {
			for d := range member.Messages() {
				if d.Err != nil {
					return
				}
				mu.Lock()
				done[string(d.Payload)]++
				perWorker[w]++
				if len(done) == jobs {
					once.Do(func() { close(finished) })
				}
				crash := w == 2 && perWorker[w] == 100
				mu.Unlock()
				if crash {
					fmt.Println("worker 2's member closes after 100 jobs, in the middle of a batch")
					n.Close()
					return
				}
				time.Sleep(time.Millisecond) // the job's work
				member.Ack(ctx, d.Message)
			}
		}()
	}
	select {
	case <-finished:
	case <-ctx.Done():
		log.Fatal("jobs left unprocessed")
	}
	mu.Lock()
	again := 0
	for _, c := range done {
		if c > 1 {
			again++
		}
	}
	fmt.Printf("all %d jobs processed (worker 0: %d, worker 1: %d, worker 2: %d); %d processed twice after the close\n",
		len(done), perWorker[0], perWorker[1], perWorker[2], again)
	mu.Unlock()
}
