package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/logger"
	dbsm "github.com/lni/dragonboat/v4/statemachine"
)

// rawShardID is the one Raft group of the raw dragonboat cluster.
const rawShardID = 1

// rawSystem is dragonboat with a trivial state machine: the floor under
// coordkit's cost, with the same NodeHost and Raft settings coordkit uses by
// default. It has puts and reads, nothing else.
type rawSystem struct {
	dir   string
	hosts []*dragonboat.NodeHost
}

var _ system = (*rawSystem)(nil)

// counterSM is the trivial state machine: Update counts entries and keeps
// the last one; Lookup returns the last one.
type counterSM struct {
	count atomic.Uint64
	last  atomic.Pointer[[]byte]
}

func (m *counterSM) Update(e dbsm.Entry) (dbsm.Result, error) {
	n := m.count.Add(1)
	v := append([]byte(nil), e.Cmd...)
	m.last.Store(&v)
	return dbsm.Result{Value: n}, nil
}

func (m *counterSM) Lookup(any) (any, error) {
	if p := m.last.Load(); p != nil {
		return *p, nil
	}
	return []byte(nil), nil
}

func (m *counterSM) SaveSnapshot(w io.Writer, _ dbsm.ISnapshotFileCollection, _ <-chan struct{}) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], m.count.Load())
	last, _ := m.Lookup(nil)
	if _, err := w.Write(b[:]); err != nil {
		return err
	}
	_, err := w.Write(last.([]byte))
	return err
}

func (m *counterSM) RecoverFromSnapshot(r io.Reader, _ []dbsm.SnapshotFile, _ <-chan struct{}) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(b) < 8 {
		return errors.New("counterSM: short snapshot")
	}
	m.count.Store(binary.BigEndian.Uint64(b))
	last := b[8:]
	m.last.Store(&last)
	return nil
}

func (m *counterSM) Close() error { return nil }

var quietDragonboatOnce sync.Once

// quietDragonboat turns dragonboat's default loggers down to errors. It
// never sets a logger factory: coord.Open installs its own once per process
// (routed to the quiet Logger the bench gives every Node), and setting one
// twice panics. Where coordkit's factory is installed, SetLevel is a no-op.
func quietDragonboat() {
	quietDragonboatOnce.Do(func() {
		for _, pkg := range []string{"config", "dragonboat", "gossip", "grpc", "logdb", "pebblekv",
			"raft", "raftpb", "registry", "rsm", "server", "settings", "tan", "transport"} {
			logger.GetLogger(pkg).SetLevel(logger.ERROR)
		}
	})
}

// startRaw starts n NodeHosts with one shard of counterSM, configured as
// coordkit configures its own by default: RTT 100ms, election after 10 RTTs,
// heartbeat every RTT, CheckQuorum and PreVote, the tiny in-memory LogDB
// profile, snapshots every 100,000 entries keeping 5,000 behind.
func startRaw(n int) (*rawSystem, error) { return startRawWith(n, nil) }

// startRawWith is startRaw with tweak applied to every NodeHostConfig, for
// experiments with dragonboat's own settings.
func startRawWith(n int, tweak func(*config.NodeHostConfig)) (*rawSystem, error) {
	quietDragonboat()
	dir, err := os.MkdirTemp("", "raw-dragonboat-bench-")
	if err != nil {
		return nil, err
	}
	s := &rawSystem{dir: dir}
	initial := map[uint64]dragonboat.Target{}
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		initial[uint64(i+1)] = addr
	}
	for i := range n {
		nhDir := filepath.Join(dir, fmt.Sprintf("m%d", i))
		nhc := config.NodeHostConfig{
			NodeHostDir:    nhDir,
			WALDir:         nhDir,
			RTTMillisecond: 100,
			RaftAddress:    initial[uint64(i+1)],
			DeploymentID:   4242,
			Expert: config.ExpertConfig{
				LogDB: config.GetTinyMemLogDBConfig(),
				// coordkit's sizing for one Raft group: one LogDB shard and
				// one worker of each kind (coord/node.go).
				Engine: config.EngineConfig{ExecShards: 1, CommitShards: 1, ApplyShards: 1, SnapshotShards: 1, CloseShards: 1},
			},
		}
		nhc.Expert.LogDB.Shards = 1
		if tweak != nil {
			tweak(&nhc)
		}
		nh, err := dragonboat.NewNodeHost(nhc)
		if err != nil {
			s.close()
			return nil, err
		}
		s.hosts = append(s.hosts, nh)
		rc := config.Config{
			ReplicaID:          uint64(i + 1),
			ShardID:            rawShardID,
			CheckQuorum:        true,
			PreVote:            true,
			ElectionRTT:        10,
			HeartbeatRTT:       1,
			SnapshotEntries:    100000,
			CompactionOverhead: 5000,
		}
		create := func(uint64, uint64) dbsm.IStateMachine { return &counterSM{} }
		if err := nh.StartReplica(initial, false, create, rc); err != nil {
			s.close()
			return nil, err
		}
	}
	if err := s.ready(30 * time.Second); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// ready waits until every member has served a linearizable read.
func (s *rawSystem) ready(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, nh := range s.hosts {
		for {
			rctx, rcancel := context.WithTimeout(ctx, time.Second)
			_, err := nh.SyncRead(rctx, rawShardID, nil)
			rcancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("raw dragonboat: not ready: %w", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func (s *rawSystem) members() int { return len(s.hosts) }

func (s *rawSystem) close() {
	for _, nh := range s.hosts {
		nh.Close()
	}
	os.RemoveAll(s.dir)
}

// rawTimeout bounds a call whose context has no deadline: dragonboat's
// Sync calls refuse one without (coordkit adds its RequestTimeout likewise).
const rawTimeout = 10 * time.Second

func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, rawTimeout)
}

// put proposes key and value as one entry, about the bytes coordkit
// proposes for the same put.
func (s *rawSystem) put(ctx context.Context, m int, key string, value []byte) error {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	nh := s.hosts[m]
	cmd := make([]byte, 0, len(key)+1+len(value))
	cmd = append(append(append(cmd, key...), 0), value...)
	_, err := nh.SyncPropose(ctx, nh.GetNoOPSession(rawShardID), cmd)
	return err
}

// get is SyncRead (ReadIndex) when linearizable, StaleRead otherwise.
func (s *rawSystem) get(ctx context.Context, m int, key string, serializable bool) error {
	var err error
	if serializable {
		_, err = s.hosts[m].StaleRead(rawShardID, key)
	} else {
		ctx, cancel := withDeadline(ctx)
		defer cancel()
		_, err = s.hosts[m].SyncRead(ctx, rawShardID, key)
	}
	return err
}
