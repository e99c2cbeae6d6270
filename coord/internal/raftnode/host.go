package raftnode

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/client"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
	dbsm "github.com/lni/dragonboat/v4/statemachine"
	"github.com/lni/goutils/random"
	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/metric"
	"github.com/coordkit/coordkit/coord/internal/peer"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Config is what a Host needs; package coord fills it from its Config and
// the member's metadata. Every field is required unless it says otherwise.
type Config struct {
	Name        string // the member's name, for logs and errors
	DataDir     string // dragonboat's files go in DataDir/raft
	RaftAddress string
	// ClusterToken keeps clusters apart (dragonboat's deployment ID).
	ClusterToken string
	ReplicaID    uint64
	Shards       int
	// LogDBShards is dragonboat's LogDB shard count, part of its on-disk
	// format; 0 for a DataDir created before it was recorded, which keeps
	// dragonboat's defaults.
	LogDBShards uint64
	// Observer: start the replicas as non-voting.
	Observer bool

	HeartbeatInterval, ElectionTimeout, RequestTimeout time.Duration
	SnapshotEntries, CompactionOverhead                uint64
	MaxRequestBytes                                    int
	// DiskReserve: below this much free space the member grows no log
	// (see guard.go); 0 or negative: never checked.
	DiskReserve int64

	// TLS: the PEM files of mutual TLS between members; nil for plaintext.
	TLS *TLSFiles
	// Key is the cluster key peers prove they hold (coord/internal/peer).
	Key []byte
	// FS holds DataDir; nil for the operating system's.
	FS vfs.FS
	// DiskFree reads the disk's free space; nil: FS's.
	DiskFree func() (uint64, error)
	// WrapTransport, when set, wraps the peer transport (a test harness's
	// filter).
	WrapTransport func(config.TransportFactory) config.TransportFactory
	Logger        *slog.Logger

	// Listener returns the state-machine listener of shard i (watches and
	// lease deadlines). It is called once per start of the shard's replica.
	Listener func(shard int) sm.Listener
	// Leading, when set, is called on dragonboat's goroutine when this
	// member becomes shard i's leader; it must not block.
	Leading func(shard int)
	// Promoted is called when Recover finds that this observer was
	// promoted to voter, before its replicas restart as voters: it records
	// the new role (the member's metadata).
	Promoted func() error
	// Failed is called, at most once and on a goroutine of its own, when
	// the member stops itself because its state cannot be trusted (see
	// Err), once Run was called.
	Failed func(error)
}

// Host is one member's NodeHost and its shards.
type Host struct {
	cfg    Config
	log    *slog.Logger
	nh     *dragonboat.NodeHost
	nhc    config.NodeHostConfig
	peers  *peer.Factory
	shards []*Shard

	// self is this Host, for dragonboat's listeners and the transport's
	// callbacks; cleared by Close. It is an object of its own: dragonboat
	// keeps the first NodeHost of a process reachable after Close (the
	// transport's gauges in github.com/VictoriaMetrics/metrics' global set
	// hold it), and with it what it was given, so they reach the Host
	// through a pointer that Close clears, or a closed member, store and
	// all, would never be collected.
	self *atomic.Pointer[Host]
	// host is nh for the transport's goroutines (screen).
	host atomic.Pointer[dragonboat.NodeHost]

	// voters holds, by dragonboat shard ID, the voters of each shard as
	// this member last applied its membership; the peer transport thins
	// heartbeats to the other replicas, observers (watchRoles).
	voters       atomic.Pointer[map[uint64]map[uint64]bool]
	rolesChanged chan struct{}

	// failure is why this member stopped itself (fail), if it did; running
	// is set by Run.
	failure atomic.Pointer[error]
	running atomic.Bool
	// diskLow: the disk's free space is below Config.DiskReserve (watchDisk).
	diskLow atomic.Bool
	// disk is the filesystem dragonboat writes through; diskBroken is set
	// when a write to it failed (diskFailed): a goroutine of dragonboat's
	// is then blocked for good, and the NodeHost cannot be closed.
	disk       *diskFS
	diskBroken atomic.Bool
	// mute is set when the member stops itself (fail): its transport sends
	// nothing more. An object of its own, like self: a NodeHost left open
	// (closeNodeHost) holds it, and not the Host.
	mute *atomic.Bool
	// transport is the peer transport dragonboat was given.
	transport raftio.ITransport

	// ctx ends, with its cause, when the member closes (Stop).
	ctx    context.Context
	cancel context.CancelCauseFunc
	closed atomic.Bool
	wg     sync.WaitGroup

	proposals, failures, retries atomic.Uint64
	propose, apply               metric.Histogram
}

// Start starts dragonboat's NodeHost and this member's replica of every
// shard. initial names the founding members by replica ID for a new
// member that founds the cluster (nil otherwise); join: a new member added
// to a running cluster. On error nothing is left running.
func Start(cfg Config, initial map[uint64]string, join bool) (*Host, error) {
	routeLogs(cfg.Logger)
	h := &Host{cfg: cfg, log: cfg.Logger.With("member", cfg.Name), rolesChanged: make(chan struct{}, 1),
		self: new(atomic.Pointer[Host]), mute: new(atomic.Bool)}
	h.ctx, h.cancel = context.WithCancelCause(context.Background())
	h.self.Store(h)
	self := h.self
	hb := uint64(cfg.HeartbeatInterval / time.Millisecond)
	nhc := config.NodeHostConfig{
		NodeHostDir:    filepath.Join(cfg.DataDir, "raft"),
		WALDir:         filepath.Join(cfg.DataDir, "raft"),
		RTTMillisecond: hb,
		RaftAddress:    cfg.RaftAddress,
		DeploymentID:   deploymentID(cfg.ClusterToken),
		Expert: config.ExpertConfig{
			LogDB:  config.GetTinyMemLogDBConfig(),
			Engine: engineConfig(cfg.Shards),
		},
	}
	// dragonboat's defaults (16 LogDB shards, 16 to 48 workers of each
	// kind) cost 3 MiB of RSS and 800 goroutines per idle member; one LogDB
	// shard and one worker per Raft group (up to 16) cost 1 MiB and 80
	// goroutines, with put throughput unchanged within noise (bench/,
	// TestExperimentDragonboatSmallConfig).
	// Both counts are part of dragonboat's on-disk format ("hard
	// settings"): a DataDir created before they were recorded keeps
	// dragonboat's defaults.
	nhc.Expert.LogDB.Shards = cfg.LogDBShards
	if cfg.LogDBShards == 0 {
		nhc.Expert.LogDB.Shards = 16
		nhc.Expert.Engine.ExecShards = 16
	}
	nhc.RaftEventListener = leaderListener{self}
	nhc.SystemEventListener = roleListener{self}
	if cfg.TLS != nil {
		nhc.MutualTLS = true
		nhc.CAFile, nhc.CertFile, nhc.KeyFile = cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile
	}
	h.peers = peer.NewFactory(peer.Options{Key: cfg.Key, MaxRequestBytes: cfg.MaxRequestBytes, Logger: h.log,
		Observer: func(shardID, replicaID uint64) bool {
			if h := self.Load(); h != nil {
				return h.isObserver(shardID, replicaID)
			}
			return false
		},
		// Half an election timeout: the reaper and the admission probe
		// count an observer reachable when heard within two.
		ObserverHeartbeatEvery: cfg.ElectionTimeout / 2})
	nhc.Expert.TransportFactory = h.peers
	nhc.Expert.FS, h.disk = newDiskFS(cfg.FS, nhc.NodeHostDir, func(err error) {
		if h := self.Load(); h != nil {
			h.diskFailed(err)
		}
	})
	if cfg.WrapTransport != nil {
		nhc.Expert.TransportFactory = cfg.WrapTransport(h.peers)
	}
	nhc.Expert.TransportFactory = guardedTransport{nhc.Expert.TransportFactory, func(b *pb.MessageBatch) bool {
		if h := self.Load(); h != nil {
			return h.screen(b)
		}
		return true
	}, func() bool { // a snapshot from the leader would fill a nearly full disk
		h := self.Load()
		return h == nil || !h.diskLow.Load()
	}, h.mute.Load, func(t raftio.ITransport) {
		if h := self.Load(); h != nil {
			h.transport = t
		}
	}}
	h.nhc = nhc
	for i := 0; i < cfg.Shards; i++ {
		s := &Shard{h: h, Index: i, id: uint64(i + 1), clients: newRequestClients(maxInFlight),
			keepAlives: newRequestClients(maxKeepAlivesInFlight),
			noop:       client.NewNoOPSession(uint64(i+1), random.LockGuardedRand)}
		epoch := make(chan struct{})
		s.leaderEpoch.Store(&epoch)
		h.shards = append(h.shards, s)
	}
	targets := map[uint64]dragonboat.Target{}
	for id, addr := range initial {
		targets[id] = addr
	}
	if err := h.startNodeHost(targets, join); err != nil {
		h.self.Store(nil)
		h.cancel(errdefs.ErrClosed)
		return nil, h.errOr(err)
	}
	return h, nil
}

// errOr is the reason the member stopped itself, if it did (what made a
// step of its start fail), else err.
func (h *Host) errOr(err error) error {
	if cause := h.Err(); cause != nil {
		return cause
	}
	return err
}

// engineConfig sizes dragonboat's worker pools: one worker of each kind per
// shard, at most 16 (dragonboat's default).
func engineConfig(shards int) config.EngineConfig {
	w := uint64(min(max(shards, 1), 16))
	return config.EngineConfig{ExecShards: w, CommitShards: w, ApplyShards: w, SnapshotShards: w, CloseShards: w}
}

func deploymentID(token string) uint64 {
	f := fnv.New64a()
	f.Write([]byte(token))
	if v := f.Sum64(); v != 0 {
		return v
	}
	return 1
}

// startNodeHost starts dragonboat's NodeHost and this member's replica of
// every shard, in the role cfg.Observer says.
func (h *Host) startNodeHost(initial map[uint64]dragonboat.Target, join bool) error {
	nh, err := dragonboat.NewNodeHost(h.nhc)
	if err != nil {
		return fmt.Errorf("coord: starting member %q: %w", h.cfg.Name, err)
	}
	if nh == nil { // NewNodeHost recovers a panic that is not an error, and returns nothing
		return fmt.Errorf("coord: starting member %q: dragonboat failed to start (see the log)", h.cfg.Name)
	}
	h.nh = nh
	h.host.Store(nh)
	h.disk.armed.Store(true)
	for _, s := range h.shards {
		if err := h.startShard(s, initial, join); err != nil {
			h.host.Store(nil)
			h.closeNodeHost(nh)
			h.nh = nil
			return err
		}
	}
	return nil
}

// closeNodeHost closes nh, unless a write to the disk failed: one of its
// goroutines is then blocked in that write for good (diskFS), and closing
// would wait for it forever; nh is left as it is, cut off from its peers.
func (h *Host) closeNodeHost(nh *dragonboat.NodeHost) {
	if h.diskBroken.Load() {
		h.log.Error("dragonboat left open: a write to the disk never returned; restart the process to reopen the member", "data_dir", h.cfg.DataDir)
		if h.transport != nil {
			h.transport.Close() // frees the Raft port; it sent nothing since the failure (mute)
		}
		return
	}
	nh.Close()
}

// startShard starts this member's replica of s.
func (h *Host) startShard(s *Shard, initial map[uint64]dragonboat.Target, join bool) error {
	c := &h.cfg
	rc := config.Config{
		ReplicaID:          c.ReplicaID,
		ShardID:            s.id,
		CheckQuorum:        true,
		PreVote:            true,
		ElectionRTT:        uint64(c.ElectionTimeout / c.HeartbeatInterval),
		HeartbeatRTT:       1,
		SnapshotEntries:    c.SnapshotEntries,
		CompactionOverhead: c.CompactionOverhead,
		IsNonVoting:        c.Observer,
	}
	create := func(shardID, replicaID uint64) dbsm.IConcurrentStateMachine {
		m := sm.New(recoveryListener{s, c.Listener(s.Index)})
		s.machine.Store(m)
		return timedMachine{m, &h.apply}
	}
	if err := h.nh.StartConcurrentReplica(initial, join, create, rc); err != nil {
		return fmt.Errorf("coord: starting shard %d: %w", s.Index, err)
	}
	return nil
}

// recoveryListener notes, for replayed, that the shard's state machine
// loaded a snapshot, and passes every event on.
type recoveryListener struct {
	s *Shard
	sm.Listener
}

func (l recoveryListener) Recovered(v *sm.View) {
	l.s.recovered.Store(true)
	l.Listener.Recovered(v)
}

// timedMachine measures how long each batch takes to apply; it is what
// dragonboat drives, the pure state machine sits inside.
type timedMachine struct {
	*sm.Machine
	h *metric.Histogram
}

func (t timedMachine) Update(entries []dbsm.Entry) ([]dbsm.Entry, error) {
	start := time.Now()
	out, err := t.Machine.Update(entries)
	t.h.Observe(time.Since(start))
	return out, err
}

// Recover readies a restarted member before it serves: it waits until every
// shard has replayed its snapshot and local log, so that nothing older than
// what the member served before it stopped is served now, and restarts as a
// voter an observer promoted while it was down. ctx bounds the wait.
func (h *Host) Recover(ctx context.Context) error {
	if err := h.waitReplayed(ctx); err != nil {
		return h.errOr(err)
	}
	return h.errOr(h.fixRole(ctx))
}

// Run starts the member's background work: the campaign of a replica that
// is its shard's only voter (campaign; bootstrap is the number of founding
// members of a new cluster, 0 otherwise), the tracking of roles, and the
// disk watch. From then on a member that stops itself calls Config.Failed.
// It returns the error that stopped the member during its start, if one did.
func (h *Host) Run(campaign bool, bootstrap uint64) error {
	if campaign {
		h.wg.Add(1)
		go h.campaignAlone(bootstrap)
	}
	h.wg.Add(1)
	go h.watchRoles()
	if h.cfg.DiskReserve > 0 {
		h.wg.Add(1)
		go h.watchDisk()
	}
	h.running.Store(true)
	live.Store(h, struct{}{})
	return h.Err()
}

// Shards returns the member's shards, by index.
func (h *Host) Shards() []*Shard { return h.shards }

// ReplicaID is this member's Raft replica ID.
func (h *Host) ReplicaID() uint64 { return h.cfg.ReplicaID }

// Context ends when the member closes (Stop): its cause is the error calls
// on a closed member return (ErrClosed, wrapping why the member stopped
// itself if it did). Background work of the member runs under it.
func (h *Host) Context() context.Context { return h.ctx }

// Done is Context().Done().
func (h *Host) Done() <-chan struct{} { return h.ctx.Done() }

// Closed reports whether Stop was called.
func (h *Host) Closed() bool { return h.closed.Load() }

// ErrClosed is the error of calls on a closed member: ErrClosed, wrapping
// the reason the member stopped itself if it did.
func (h *Host) ErrClosed() error {
	if e := h.failure.Load(); e != nil {
		return fmt.Errorf("%w: %w", errdefs.ErrClosed, *e)
	}
	return errdefs.ErrClosed
}

// Check returns the closed error once the member is closed, else ctx's.
func (h *Host) Check(ctx context.Context) error {
	if h.closed.Load() {
		return h.ErrClosed()
	}
	return ctx.Err()
}

// WithTimeout gives ctx Config.RequestTimeout when it has no deadline.
func (h *Host) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, h.cfg.RequestTimeout)
}

// Backoff waits before retrying a request: 1 ms doubling to 64 ms with
// attempt. It returns false, at once, when ctx or the member ended first.
func (h *Host) Backoff(ctx context.Context, attempt int) bool {
	d := time.Duration(1<<min(attempt, 6)) * time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-h.ctx.Done():
		return false
	}
}

// DiskLow reports whether the disk's free space is below
// Config.DiskReserve.
func (h *Host) DiskLow() bool { return h.diskLow.Load() }

// Heard returns when a message from the peer at addr last arrived.
func (h *Host) Heard(addr string) (time.Time, bool) { return h.peers.Heard(addr) }

// TransportStats returns the peer transport's counters.
func (h *Host) TransportStats() peer.Stats { return h.peers.Stats() }

// Stats is the Host's request counters and histograms.
type Stats struct {
	Proposals, Failures, Retries uint64
	Propose, Apply               *metric.Histogram
}

// Stats returns the Host's counters, and its histograms (live).
func (h *Host) Stats() Stats {
	return Stats{Proposals: h.proposals.Load(), Failures: h.failures.Load(), Retries: h.retries.Load(),
		Propose: &h.propose, Apply: &h.apply}
}

// Stop ends the member's requests and background work: calls in flight
// and later ones return the closed error, and Context ends. It does not
// wait; Close does. It is idempotent.
func (h *Host) Stop() {
	if h.closed.Swap(true) {
		return
	}
	h.cancel(h.ErrClosed())
}

// Close stops the member (Stop), waits for its background work, and closes
// the NodeHost. It is idempotent.
func (h *Host) Close() {
	h.Stop()
	h.wg.Wait()
	if nh := h.host.Swap(nil); nh != nil {
		h.closeNodeHost(nh)
	}
	live.Delete(h)
	h.self.Store(nil) // see self
}

// TransferLeadership hands every shard this member leads to another voter
// and waits, for at most one election timeout or until ctx ends, for the
// handovers.
func (h *Host) TransferLeadership(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ElectionTimeout)
	defer cancel()
	var led []*Shard
	for _, s := range h.shards {
		leader, _, ok := s.Leader()
		if !ok || leader != h.cfg.ReplicaID {
			continue
		}
		m, err := h.nh.SyncGetShardMembership(ctx, s.id)
		if err != nil {
			continue
		}
		for id := range m.Nodes {
			if id != h.cfg.ReplicaID {
				if h.nh.RequestLeaderTransfer(s.id, id) == nil {
					led = append(led, s)
				}
				break
			}
		}
	}
	for _, s := range led {
		for attempt := 0; ; attempt++ {
			if leader, _, ok := s.Leader(); ok && leader != h.cfg.ReplicaID {
				break
			}
			if !h.Backoff(ctx, min(attempt, 2)) {
				return
			}
		}
	}
}

// fixRole restarts, as a voter, the replicas of an observer that was
// promoted (PromoteMember) since it last started: dragonboat must be told a
// replica's role when it starts it, and the role lives in the replicated
// membership, which is known only once the replica has replayed its log.
func (h *Host) fixRole(ctx context.Context) error {
	if !h.cfg.Observer {
		return nil
	}
	// The role is read from the membership the replica applied, so wait
	// until it applied the last membership change in its local log (the
	// replay of proposals does not cover those).
	want := map[uint64]uint64{} // shard ID -> index of its last logged membership change
	for _, s := range h.shards {
		lr, err := h.nh.GetLogReader(s.id)
		if err != nil {
			return fmt.Errorf("coord: shard %d: %w", s.Index, err)
		}
		want[s.id], _ = lastConfigChange(lr, 0)
	}
	var promoted map[uint64]bool
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for attempt := 0; ; attempt++ {
		info := h.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
		promoted = map[uint64]bool{}
		applied := 0
		for _, si := range info.ShardInfoList {
			if si.Pending || si.ConfigChangeIndex < want[si.ShardID] {
				continue
			}
			applied++
			if !si.IsNonVoting {
				promoted[si.ShardID] = true
			}
		}
		if applied == len(h.shards) || !h.Backoff(wctx, attempt) {
			break
		}
	}
	if len(promoted) == 0 {
		return nil
	}
	if len(promoted) < len(h.shards) {
		// An interrupted PromoteMember: the promoted replicas run as voters
		// already (replaying their promotion made them so); call
		// PromoteMember again to finish, and the next restart settles.
		h.log.Warn("promoted to voter in some shards only; run PromoteMember again", "shards", len(promoted))
		return nil
	}
	h.log.Info("this observer was promoted to voter; restarting as a voter")
	for _, s := range h.shards {
		// A replica started as a voter panics when it replays the entry that
		// added it as an observer: snapshot first, so that the replay starts
		// after that entry. Rejected means nothing was applied since the
		// last snapshot, which then already holds the promotion.
		sctx, cancel := context.WithTimeout(ctx, h.cfg.RequestTimeout)
		_, err := h.nh.SyncRequestSnapshot(sctx, s.id, dragonboat.SnapshotOption{})
		cancel()
		if err != nil && !errors.Is(err, dragonboat.ErrRejected) {
			return fmt.Errorf("coord: snapshot before restarting shard %d as a voter: %w", s.Index, err)
		}
	}
	// Restart the whole NodeHost rather than single replicas: a replica
	// stopped and started again inside one NodeHost sometimes could not
	// commit once elected leader (TestPromoteObserverAndItRestartsAsAVoter).
	h.host.Store(nil)
	h.nh.Close()
	h.nh = nil
	h.cfg.Observer = false
	if err := h.cfg.Promoted(); err != nil {
		return err
	}
	for _, s := range h.shards {
		s.recovered.Store(false)
	}
	if err := h.startNodeHost(nil, false); err != nil {
		return err
	}
	return h.waitReplayed(ctx)
}

// lastConfigChange returns the index of the last membership change in the
// local log from index from (and after the latest snapshot) up to the
// commit index the replica restarted with; 0 when there is none.
func lastConfigChange(lr dragonboat.ReadonlyLogReader, from uint64) (uint64, error) {
	st, _ := lr.NodeState()
	first, _ := lr.GetRange()
	from = max(from, first, lr.Snapshot().Index+1)
	var last uint64
	for from <= st.Commit {
		ents, err := lr.Entries(from, st.Commit+1, 16<<20)
		if err != nil {
			return 0, err
		}
		if len(ents) == 0 || ents[0].Index != from {
			return 0, fmt.Errorf("coord: log entry %d unavailable", from)
		}
		for i := range ents {
			if ents[i].IsConfigChange() {
				last = ents[i].Index
			}
		}
		from = ents[len(ents)-1].Index + 1
	}
	return last, nil
}

// campaignAlone makes this member's replica campaign at once in each shard
// where it is the only voter, instead of after its randomized election
// timeout (1 to 2 ElectionTimeouts, all spent waiting for no one): a single
// member then takes writes a few milliseconds after Open. Raft's timing
// only keeps an elected leader from being disrupted; a shard whose only
// voter is this replica can have no leader but this replica, so nothing is
// disrupted. The election timeout itself is unchanged for later elections.
//
// The kick is dragonboat's leader-transfer message TimeoutNow, delivered to
// the replica through the transport: a follower that receives it acts as if
// its election timeout had elapsed. It is sent only once the replica's
// applied membership is final — it has applied every membership change in
// the log it campaigns with: for a new member the bootstrap entries
// (indexes 1 to bootstrap, one per founding member), for a restarted one
// those up to its commit index — and that membership has this replica as its
// only voter. Until then a transient membership could show one voter: a
// 3-member shard applies its founders one entry at a time. Observers
// (non-voting) do not count; coordkit adds no witnesses.
//
// dragonboat skips a campaign while committed entries remain to be applied
// (and restarts the replica's election timeout), so the kick is repeated
// until the shard has a leader, for at most an ElectionTimeout; the
// ordinary election timeout then takes over. It ends early when the member
// closes.
func (h *Host) campaignAlone(bootstrap uint64) {
	defer h.wg.Done()
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.ElectionTimeout)
	defer cancel()
	want := map[uint64]uint64{} // shard ID -> last membership change to apply first
	for _, s := range h.shards {
		// Read applied before the membership below, which then reflects
		// every change up to it: dragonboat applies entries in order and
		// updates the membership as it applies a change. Only the log after
		// it needs reading.
		var applied uint64
		if m := s.machine.Load(); m != nil {
			applied = m.View().Applied()
		}
		lr, err := h.nh.GetLogReader(s.id)
		if err != nil {
			continue
		}
		last, err := lastConfigChange(lr, applied+1)
		if err != nil {
			continue // the log is unreadable: leave the shard to its election timeout
		}
		want[s.id] = max(last, bootstrap)
	}
	for attempt := 0; len(want) > 0; attempt++ {
		info := h.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
		for _, si := range info.ShardInfoList {
			w, ok := want[si.ShardID]
			if !ok {
				continue
			}
			switch kick, settled := campaignNow(si, w, h.cfg.ReplicaID); {
			case kick:
				h.peers.TimeoutNow(si.ShardID, h.cfg.ReplicaID)
			case settled:
				delete(want, si.ShardID)
			}
		}
		if len(want) == 0 || !h.Backoff(ctx, attempt) {
			return
		}
	}
}

// campaignNow decides, from replica self's view si of its shard, whether
// to kick it into campaigning (see campaignAlone): only once the view
// reflects every membership change up to index want and shows self as the
// only voter. settled: there is nothing more to do, because the shard has a
// leader or other voters.
func campaignNow(si dragonboat.ShardInfo, want, self uint64) (kick, settled bool) {
	_, voter := si.Replicas[self]
	switch {
	case si.LeaderID != 0:
		return false, true
	case si.Pending || si.ConfigChangeIndex < want:
		return false, false // the membership is not final yet
	case voter && len(si.Replicas) == 1 && !si.IsNonVoting && !si.IsWitness:
		return true, false
	}
	return false, true
}

// waitReplayed blocks until each shard's state machine has applied every
// application entry that was committed in the local log when the member
// stopped. Open returns only then, so serializable reads and watches "from
// now" on a restarted member never start from an older state than it had.
func (h *Host) waitReplayed(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute) // a huge log still ends the wait
	defer cancel()
	for _, s := range h.shards {
		lr, err := h.nh.GetLogReader(s.id)
		if err != nil {
			return fmt.Errorf("coord: shard %d: %w", s.Index, err)
		}
		st, _ := lr.NodeState()
		for attempt := 0; !replayed(s, lr, st.Commit); attempt++ {
			if !h.Backoff(ctx, attempt) {
				h.log.Warn("replica still replaying its log; serving it as is", "shard", s.Index, "commit", st.Commit)
				break
			}
		}
	}
	return nil
}

// replayed reports whether shard s has applied every proposal up to commit.
func replayed(s *Shard, lr dragonboat.ReadonlyLogReader, commit uint64) bool {
	m := s.machine.Load()
	if m == nil {
		return false
	}
	applied := m.View().Applied()
	if applied >= commit {
		return true
	}
	// Entries up to the latest snapshot are in the state once it is loaded,
	// even when the last of them were not proposals (a leader's empty
	// entry, a membership change), which leave Applied behind.
	from := applied + 1
	if snap := lr.Snapshot(); snap.Index >= from {
		if !s.recovered.Load() {
			return false // the snapshot is not loaded yet
		}
		from = snap.Index + 1
	}
	if from > commit {
		return true
	}
	ents, err := lr.Entries(from, commit+1, 64<<20)
	if err != nil || len(ents) == 0 || ents[0].Index != from {
		return false
	}
	for i := range ents {
		if ents[i].IsProposal() && !ents[i].IsEmpty() {
			return false
		}
	}
	return ents[len(ents)-1].Index >= commit
}

// watchRoles keeps voters current: at once, then whenever a shard's
// membership changes on this member (roleListener).
func (h *Host) watchRoles() {
	defer h.wg.Done()
	for {
		h.refreshRoles()
		select {
		case <-h.ctx.Done():
			return
		case <-h.rolesChanged:
		}
	}
}

// refreshRoles reads every shard's voters from the membership this member
// applied (no network).
func (h *Host) refreshRoles() {
	info := h.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
	if info == nil {
		return
	}
	voters := map[uint64]map[uint64]bool{}
	for _, si := range info.ShardInfoList {
		if si.Pending || len(si.Replicas) == 0 {
			continue
		}
		v := make(map[uint64]bool, len(si.Replicas))
		for id := range si.Replicas {
			v[id] = true
		}
		voters[si.ShardID] = v
	}
	h.voters.Store(&voters)
}

// isObserver reports whether replicaID is taken for a non-voting member of
// the shard: the shard's membership is known here and does not list it
// among the voters. Every replica of a shard whose membership is not known
// yet counts as a voter. A voter not yet applied here counts as an observer
// until the MembershipChanged event is handled, a moment; meanwhile its
// heartbeats are thinned to one per half election timeout.
func (h *Host) isObserver(shardID, replicaID uint64) bool {
	vs := h.voters.Load()
	if vs == nil {
		return false
	}
	v, ok := (*vs)[shardID]
	return ok && !v[replicaID]
}
