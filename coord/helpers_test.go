package coord_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/coordkit/coordkit/internal/freeport"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func freeAddr(t *testing.T) string {
	a, err := freeListener()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// freeListener returns a loopback address whose port is free right now and
// not handed out before in this process.
func freeListener() (string, error) { return freeport.Addr() }
