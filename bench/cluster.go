package main

import (
	"context"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/internal/freeport"
)

// coordCluster starts n coordkit members in this process on loopback, the
// way an application fleet would embed them: coord's defaults, tweaked by
// tweak (coordtest.Start).
func coordCluster(n int, tweak func(*coord.Config)) ([]*coord.Node, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := coordtest.Start(ctx, n, coordtest.WithConfig(tweak))
	if err != nil {
		return nil, nil, err
	}
	return c.Nodes(), c.Close, nil
}

// freeAddr returns a loopback address free right now and not returned
// before in this process.
func freeAddr() (string, error) { return freeport.Addr() }
