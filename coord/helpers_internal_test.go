package coord

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/coordkit/coordkit/internal/proctest"
)

// openOne opens a 1-member Node on a free loopback port in a temporary
// directory, with cfg's other settings and a quiet logger.
func openOne(t *testing.T, cfg Config) *Node {
	t.Helper()
	cfg.RaftAddress = proctest.FreeAddr(t)
	cfg.DataDir = t.TempDir()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
