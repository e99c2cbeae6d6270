// Command discovery runs three instances of an HTTP service, each
// registering itself (with a health check) on its own member of a 3-member
// cluster, and a client that discovers them and spreads requests over them;
// one instance then fails its health check and is no longer picked.
//
//	go run ./examples/discovery
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/registry"
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

	healthy := make([]atomic.Bool, 3)
	for i := range nodes {
		healthy[i].Store(true)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/hello", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "instance %d", i) })
		mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
			if !healthy[i].Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		})
		srv := &http.Server{Handler: mux}
		go srv.Serve(l)
		defer srv.Close()
		addr := l.Addr().String()
		reg, err := registry.New(nodes[i], "/services").Register(ctx,
			registry.Instance{Service: "hello", ID: fmt.Sprint("hello-", i), Addr: addr, Weight: 1},
			registry.WithCheck(registry.Check{HTTP: "http://" + addr + "/health", Interval: 200 * time.Millisecond}))
		if err != nil {
			log.Fatal(err)
		}
		defer reg.Deregister(context.Background())
	}

	// The client discovers the service through its own member's replica.
	res, err := registry.New(nodes[0], "/services").NewResolver(ctx, "hello")
	if err != nil {
		log.Fatal(err)
	}
	defer res.Close()
	call := func(n int) map[string]int {
		got := map[string]int{}
		for k := 0; k < n; k++ {
			in, err := res.Pick(registry.RoundRobin, "")
			if err != nil {
				log.Fatal(err)
			}
			resp, err := http.Get("http://" + in.Addr + "/hello")
			if err != nil {
				res.ReportDown(in.ID, 5*time.Second) // skip it for a while
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got[string(b)]++
		}
		return got
	}
	fmt.Printf("discovered %d instances; 6 round-robin calls: %v\n", len(res.Instances()), call(6))

	healthy[1].Store(false)
	for {
		if in := res.Instances(); len(in) == 3 && in[1].Status == registry.Critical {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Println("instance 1 fails its health check: status critical")
	fmt.Printf("6 calls: %v\n", call(6))
}
