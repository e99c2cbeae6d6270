package coord_test

import (
	"io"
	"log/slog"

	"github.com/coordkit/coordkit/internal/freeport"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// freeListener returns a loopback address whose port is free right now and
// not handed out before in this process, for the examples (tests call
// proctest.FreeAddr).
func freeListener() (string, error) { return freeport.Addr() }
