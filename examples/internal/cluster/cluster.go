// Package cluster starts an embedded coordkit cluster for the example
// programs: members on loopback in a temporary directory.
package cluster

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/internal/freeport"
)

// Start opens n members and waits until they are ready. stop closes them and
// removes their data.
func Start(ctx context.Context, n int) (nodes []*coord.Node, stop func(), err error) {
	dir, err := os.MkdirTemp("", "coordkit-example-")
	if err != nil {
		return nil, nil, err
	}
	addrs, err := freeport.Addrs(n)
	if err != nil {
		return nil, nil, err
	}
	initial := map[string]string{}
	for i, a := range addrs {
		initial[fmt.Sprintf("m%d", i)] = a
	}
	secret := rand.Text()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	nodes = make([]*coord.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("m%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = coord.Open(ctx, coord.Config{Name: name, DataDir: filepath.Join(dir, name),
				RaftAddress: initial[name], InitialCluster: initial, ClusterSecret: secret, Logger: quiet})
		}()
	}
	wg.Wait()
	stop = func() {
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
	for _, nd := range nodes {
		if err := nd.Ready(ctx); err != nil {
			stop()
			return nil, nil, err
		}
	}
	return nodes, stop, nil
}
