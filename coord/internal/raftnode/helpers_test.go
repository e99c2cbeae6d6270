package raftnode

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/coordkit/coordkit/coord/internal/sm"
	"github.com/coordkit/coordkit/internal/proctest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quiet is a listener that ignores every event.
type quiet struct{}

func (quiet) Applied(int64, []sm.Event)         {}
func (quiet) LeaseRenewed(int64, int64, uint64) {}
func (quiet) LeaseGone(int64)                   {}
func (quiet) LeasesReset([]sm.LeaseInfo)        {}
func (quiet) Recovered(*sm.View)                {}
func (quiet) HashCheck(uint64, *sm.View)        {}

// startOne starts a 1-member Host on a free loopback port in a temporary
// directory, with cfg's timings (defaults where zero), and runs it. The
// test closes it.
func startOne(t *testing.T, cfg Config) *Host {
	t.Helper()
	cfg.Name, cfg.ClusterToken, cfg.ReplicaID, cfg.Shards, cfg.LogDBShards = "m1", "test", 1, 1, 1
	cfg.RaftAddress = proctest.FreeAddr(t)
	cfg.DataDir = t.TempDir()
	cfg.Key = []byte("0123456789abcdef0123456789abcdef")
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval, cfg.ElectionTimeout = 20*time.Millisecond, 200*time.Millisecond
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	cfg.SnapshotEntries, cfg.CompactionOverhead, cfg.MaxRequestBytes = 1000, 100, 1<<20
	if cfg.Listener == nil {
		cfg.Listener = func(int) sm.Listener { return quiet{} }
	}
	h, err := Start(cfg, map[uint64]string{1: cfg.RaftAddress}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Run(true, 1); err != nil {
		t.Fatal(err)
	}
	return h
}

// ready waits until the Host's only shard has a leader and serves a
// linearizable read.
func ready(t *testing.T, ctx context.Context, h *Host) {
	t.Helper()
	if _, err := h.Shards()[0].Read(ctx, false); err != nil {
		t.Fatal(err)
	}
}
