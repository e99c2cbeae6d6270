package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/internal/freeport"
)

// coordCluster starts n coordkit members in this process on loopback, the
// way an application fleet would embed them.
func coordCluster(n int, tweak func(*coord.Config)) ([]*coord.Node, func(), error) {
	dir, err := os.MkdirTemp("", "coordkit-bench-")
	if err != nil {
		return nil, nil, err
	}
	initial := map[string]string{}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("m%d", i)
		addr, err := freeAddr()
		if err != nil {
			return nil, nil, err
		}
		initial[names[i]] = addr
	}
	secret := rand.Text()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	nodes := make([]*coord.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, name := range names {
		cfg := coord.Config{Name: name, DataDir: filepath.Join(dir, name), RaftAddress: initial[name],
			InitialCluster: initial, ClusterSecret: secret, Logger: quiet}
		if tweak != nil {
			tweak(&cfg)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = coord.Open(context.Background(), cfg)
		}()
	}
	wg.Wait()
	stop := func() {
		for _, nd := range nodes {
			if nd != nil {
				nd.Close()
			}
		}
		os.RemoveAll(dir)
	}
	for _, err := range errs {
		if err != nil {
			stop()
			return nil, nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, nd := range nodes {
		if err := nd.Ready(ctx); err != nil {
			stop()
			return nil, nil, err
		}
	}
	return nodes, stop, nil
}

// freeAddr returns a loopback address free right now and not returned
// before in this process.
func freeAddr() (string, error) { return freeport.Addr() }
