// Command quickstart starts an embedded three-member coordkit cluster in a
// temporary directory and walks through the basics: put and get from
// different members, a compare-and-swap transaction, a watch, and a lease
// whose keys disappear when it expires.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord"
)

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	dir, err := os.MkdirTemp("", "coordkit-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Three members, as etcd's --initial-cluster would list them.
	names := []string{"a", "b", "c"}
	initial := map[string]string{}
	for i, addr := range freeLoopbackAddrs(len(names)) {
		initial[names[i]] = addr
	}
	// Members prove to each other that they hold the same secret; a real
	// cluster reads it from a file (coordkit --cluster-secret-file).
	secret := rand.Text()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	nodes := make([]*coord.Node, len(names))
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, name := range names {
		wg.Add(1)
		go func() { // members of a new cluster start together
			defer wg.Done()
			nodes[i], errs[i] = coord.Open(ctx, coord.Config{
				Name: name, DataDir: filepath.Join(dir, name), RaftAddress: initial[name],
				InitialCluster: initial, ClusterSecret: secret, Logger: quiet,
			})
		}()
	}
	wg.Wait()
	for _, n := range nodes {
		if n != nil {
			defer n.Close()
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	for _, n := range nodes {
		if err := n.Ready(ctx); err != nil {
			return err
		}
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	members, err := a.Members(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "cluster up: %d members\n", len(members))

	// Put on one member, read on another: reads are linearizable by default.
	put, err := a.Put(ctx, "/config/color", []byte("blue"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "put /config/color=blue on a at revision %d\n", put.Header.Revision)
	get, err := b.Get(ctx, "/config/color")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "get /config/color on b: %s (version %d)\n", get.KVs[0].Value, get.KVs[0].Version)

	// Watch on c every change after the put. (Without WithRev a watch starts
	// after c's own current revision, and c may not have applied the put yet.)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	events := c.Watch(wctx, "/config/", coord.WithPrefix(), coord.WithPrevKV(), coord.WithRev(put.Header.Revision+1))

	// Compare-and-swap: change the color only if nobody changed it since we read it.
	rev := get.KVs[0].ModRevision
	txn, err := b.Txn(ctx).
		If(coord.Compare(coord.ModRevision("/config/color"), "=", rev)).
		Then(coord.OpPut("/config/color", []byte("green"))).
		Commit()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "txn: swap blue->green if unchanged since revision %d: succeeded=%v\n", rev, txn.Succeeded)
	stale, err := a.Txn(ctx).
		If(coord.Compare(coord.ModRevision("/config/color"), "=", rev)).
		Then(coord.OpPut("/config/color", []byte("red"))).
		Commit()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "txn: the same swap again (stale revision): succeeded=%v\n", stale.Succeeded)

	w := <-events
	for _, e := range w.Events {
		fmt.Fprintf(out, "watch on c: %s %s %s -> %s\n", e.Type, e.KV.Key, e.PrevKV.Value, e.KV.Value)
	}

	// A lease: the key lives as long as the lease is kept alive.
	lease, err := a.Grant(ctx, 2*time.Second)
	if err != nil {
		return err
	}
	if _, err := a.Put(ctx, "/config/owner", []byte("quickstart"), coord.WithLease(lease.ID)); err != nil {
		return err
	}
	fmt.Fprintf(out, "granted lease %x (TTL %v), attached /config/owner\n", lease.ID, lease.TTL)
	start := time.Now()
	for w := range events {
		if err := w.Err(); err != nil {
			return err
		}
		for _, e := range w.Events {
			if e.Type == coord.EventDelete && e.KV.Key == "/config/owner" {
				fmt.Fprintf(out, "watch on c: DELETE /config/owner after %.1fs: the lease expired\n", time.Since(start).Seconds())
				got, err := b.Get(ctx, "/config/", coord.WithPrefix())
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "keys left under /config/: %d (%s=%s)\n", got.Count, got.KVs[0].Key, got.KVs[0].Value)
				return nil
			}
		}
	}
	return fmt.Errorf("watch ended before the lease expired")
}

// freeLoopbackAddrs returns n distinct loopback addresses whose ports are
// free now. Every listener stays open until all n are chosen, so the kernel
// cannot hand the same port out twice.
func freeLoopbackAddrs(n int) []string {
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs
}
