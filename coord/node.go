package coord

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/client"
	"github.com/lni/dragonboat/v4/config"
	pb "github.com/lni/dragonboat/v4/raftpb"
	dbsm "github.com/lni/dragonboat/v4/statemachine"
	"github.com/lni/goutils/random"
	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord/internal/hooks"
	"github.com/coordkit/coordkit/coord/internal/peer"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

func init() {
	hooks.WrapTransport = func(cfg any, wrap func(config.TransportFactory) config.TransportFactory) {
		cfg.(*Config).testTransport = wrap
	}
	hooks.SetFS = func(cfg any, fs vfs.FS) { cfg.(*Config).testFS = fs }
	hooks.SetDiskFree = func(cfg any, free func() (uint64, error)) { cfg.(*Config).testDiskFree = free }
	hooks.Crash = func(node any) { node.(*Node).shutdown(false) }
	hooks.StateHashes = func(node any) (revs []int64, hashes []uint64) {
		for _, s := range node.(*Node).shards {
			v := s.machine.Load().View()
			revs = append(revs, v.Revision())
			hashes = append(hashes, v.Hash())
		}
		return revs, hashes
	}
}

// Node is one member of a coordkit cluster, embedded in this process. It
// holds one replica of every shard. All methods are safe for concurrent use.
//
// Reads are linearizable unless WithSerializable is given; writes go through
// the shard's Raft leader and return once applied on this member, so a read
// here right after a write sees it.
type Node struct {
	cfg       Config
	log       *slog.Logger
	nh        *dragonboat.NodeHost
	replicaID uint64
	meta      *memberMeta
	shards    []*shard

	admin     *http.Server  // the admission service, when AdminAddress is set
	admitting chan struct{} // held by the admission under way (admit)
	nhc       config.NodeHostConfig
	key       []byte        // the cluster key: see clusterKey
	peers     *peer.Factory // the peer transport's factory, for its Stats

	metrics metrics
	stats   []shardStats // by shard index
	// self is this Node, for leaderListener; cleared by Close. It is an
	// object of its own: a pointer into the Node would keep it reachable.
	self *atomic.Pointer[Node]

	// voters holds, by dragonboat shard ID, the voters of each shard as
	// this member last applied its membership; the peer transport thins
	// heartbeats to the other replicas, observers (watchRoles).
	voters       atomic.Pointer[map[uint64]map[uint64]bool]
	rolesChanged chan struct{}

	sessMu   sync.Mutex
	sessions map[*Session]struct{} // live sessions, revoked by Close

	// host is nh for the transport's goroutines (screen).
	host atomic.Pointer[dragonboat.NodeHost]
	// failure is why this member stopped itself (fail), if it did;
	// opened is set when Open is about to return it.
	failure atomic.Pointer[error]
	opened  atomic.Bool
	// diskLow: the disk's free space is below Config.DiskReserve (watchDisk).
	diskLow atomic.Bool

	closed    atomic.Bool
	stop      chan struct{} // closed by Close: background work ends
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// shard is this member's replica of one Raft group.
type shard struct {
	n       *Node
	idx     int    // 0-based, as users see it
	id      uint64 // dragonboat shard ID (idx+1)
	machine atomic.Pointer[sm.Machine]
	hub     *hub
	keeper  *keeper
	// clients proposes writes, one request each at a time (propose).
	clients chan *requestClient
	// keepAlives is a lane of request clients for lease keep-alives (which
	// also take free write clients), so that they never wait behind writes:
	// a member flooded with writes would otherwise let its sessions expire,
	// and lose their locks and leaderships.
	keepAlives chan *requestClient
	// noop is the shard's dragonboat NO-OP session: never changed, so
	// every proposal shares it.
	noop *client.Session
	// recovered: the state machine loaded a snapshot since it started.
	recovered atomic.Bool
	// logChecked: a leader's heartbeat showed this replica's log holds
	// what it had acknowledged (screen), since it last started.
	logChecked atomic.Bool
	// leaderEpoch is closed, and replaced, when this member learns of a
	// new leader of the shard (leaderListener): requests forwarded to the
	// old one may be lost, and are sent again at once (leaderChanged).
	leaderEpoch atomic.Pointer[chan struct{}]
}

// epoch returns a channel closed when this member next learns of a new
// leader of the shard.
func (s *shard) epoch() <-chan struct{} { return *s.leaderEpoch.Load() }

// leaderChanged wakes the requests waiting on the current epoch.
func (s *shard) leaderChanged() {
	ch := make(chan struct{})
	close(*s.leaderEpoch.Swap(&ch))
}

// errLeaderChanged ends an attempt whose shard got a new leader while it
// waited: a request forwarded to the old leader may have been lost, and
// would otherwise wait out its attempt. It is a timeout to every caller: the
// attempt may have entered the log, and is made again (writes under the
// same request ID, applied at most once).
var errLeaderChanged = fmt.Errorf("coord: the leader changed during the attempt: %w", dragonboat.ErrTimeout)

// Open starts this member. A new DataDir founds a cluster with
// InitialCluster (or joins none: a single member); an existing DataDir
// resumes the member it holds, with every key, revision and lease.
//
// Open does not wait for the cluster to elect leaders: with a 3-member
// cluster, start the members concurrently; calls made before a leader exists
// wait for one until their context ends. Use Ready to wait explicitly. A
// member that is the only voter of a shard does not wait out an election
// timeout there: it takes the lead as soon as it has replayed its log.
//
// Errors: ErrInvalidConfig naming the field, an error naming DataDir when the
// directory cannot be used, or dragonboat's refusal to start (for example the
// RaftAddress already in use). ctx bounds only the start-up.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := mkdirAllSynced(c.fs(), c.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("coord: DataDir: %w", err)
	}
	meta, err := loadMeta(c.fs(), c.DataDir)
	if err != nil {
		return nil, err
	}
	fresh := meta == nil
	if !fresh {
		if err := checkRaftDir(c.fs(), filepath.Join(c.DataDir, "raft")); err != nil {
			return nil, err
		}
	}
	alone, token := !c.Join && len(c.InitialCluster) == 1, c.ClusterToken
	if !fresh {
		alone, token = !meta.Joined && len(meta.Members) == 1, meta.ClusterToken
	}
	key, err := clusterKey(&c, token, alone)
	if err != nil {
		return nil, err
	}
	if !fresh && meta.Seeded && len(c.JoinSeeds) > 0 {
		if meta, err = rejoin(ctx, &c, key, meta); err != nil {
			return nil, err
		}
		fresh = meta == nil
	}
	var admitted *admitResponse
	if fresh && c.Join && len(c.JoinSeeds) > 0 {
		if admitted, err = askSeeds(ctx, &c, key, 0, true); err != nil {
			return nil, err
		}
		if c.Shards != 0 && c.Shards != admitted.Shards {
			return nil, configError("Shards", "%d, but the cluster has %d", c.Shards, admitted.Shards)
		}
		c.Shards = admitted.Shards
	}
	if fresh {
		shards := c.Shards
		if shards == 0 {
			shards = defaultShards
		}
		members := foundingMembers(c.InitialCluster)
		id := members[c.Name].ReplicaID
		if c.Join {
			id = joinedReplicaID(c.ClusterToken, c.Name, c.RaftAddress)
			if admitted != nil {
				id, _ = strconv.ParseUint(admitted.ReplicaID, 10, 64)
				members = map[string]member{}
			}
			members[c.Name] = member{ReplicaID: id, Address: c.RaftAddress}
		}
		meta = &memberMeta{
			Version: metaVersion, Name: c.Name, ReplicaID: id, Joined: c.Join, Observer: c.Observer, Seeded: admitted != nil,
			ClusterToken: c.ClusterToken, Shards: shards, RaftAddress: c.RaftAddress, Members: members,
			LogDBShards: 1,
		}
	} else {
		if cfg.Name != "" && cfg.Name != meta.Name {
			return nil, configError("Name", "%q, but DataDir holds member %q", cfg.Name, meta.Name)
		}
		if c.Shards != 0 && c.Shards != meta.Shards {
			return nil, configError("Shards", "%d, but the cluster was created with %d", c.Shards, meta.Shards)
		}
		if cfg.ClusterToken != "" && cfg.ClusterToken != meta.ClusterToken {
			return nil, configError("ClusterToken", "%q, but DataDir belongs to cluster %q", cfg.ClusterToken, meta.ClusterToken)
		}
		if cfg.RaftAddress != "" && cfg.RaftAddress != meta.RaftAddress {
			return nil, configError("RaftAddress", "%q, but this member was created with %q", cfg.RaftAddress, meta.RaftAddress)
		}
		c.Name, c.ClusterToken, c.RaftAddress = meta.Name, meta.ClusterToken, meta.RaftAddress
		if meta.Version < metaVersion { // gains its checksum
			if err := saveMeta(c.fs(), c.DataDir, meta); err != nil {
				return nil, fmt.Errorf("coord: DataDir: %w", err)
			}
		}
	}
	c.Shards = meta.Shards
	routeDragonboatLogs(c.Logger)

	n := &Node{cfg: c, log: c.Logger.With("member", c.Name), replicaID: meta.ReplicaID, meta: meta, key: key, stop: make(chan struct{}),
		admitting: make(chan struct{}, 1), rolesChanged: make(chan struct{}, 1)}
	hb := uint64(c.HeartbeatInterval / time.Millisecond)
	nhc := config.NodeHostConfig{
		NodeHostDir:    filepath.Join(c.DataDir, "raft"),
		WALDir:         filepath.Join(c.DataDir, "raft"),
		RTTMillisecond: hb,
		RaftAddress:    c.RaftAddress,
		DeploymentID:   deploymentID(c.ClusterToken),
		Expert: config.ExpertConfig{
			LogDB:  config.GetTinyMemLogDBConfig(),
			Engine: engineConfig(meta.Shards),
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
	nhc.Expert.LogDB.Shards = meta.LogDBShards
	if meta.LogDBShards == 0 {
		nhc.Expert.LogDB.Shards = 16
		nhc.Expert.Engine.ExecShards = 16
	}
	n.stats = make([]shardStats, meta.Shards)
	n.self = new(atomic.Pointer[Node])
	n.self.Store(n)
	nhc.RaftEventListener = leaderListener{n.self}
	nhc.SystemEventListener = roleListener{n.self}
	if c.TLS != nil {
		nhc.MutualTLS = true
		nhc.CAFile, nhc.CertFile, nhc.KeyFile = c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile
	}
	self := n.self // not n: see leaderListener
	n.peers = peer.NewFactory(peer.Options{Key: key, MaxRequestBytes: c.MaxRequestBytes, Logger: n.log,
		Observer: func(shardID, replicaID uint64) bool {
			if n := self.Load(); n != nil {
				return n.isObserver(shardID, replicaID)
			}
			return false
		},
		// Half an election timeout: the reaper and the admission probe
		// count an observer reachable when heard within two.
		ObserverHeartbeatEvery: c.ElectionTimeout / 2})
	nhc.Expert.TransportFactory = n.peers
	if c.testFS != nil {
		nhc.Expert.FS = c.fs()
	}
	if wrap, ok := c.testTransport.(func(config.TransportFactory) config.TransportFactory); ok {
		nhc.Expert.TransportFactory = wrap(n.peers)
	}
	nhc.Expert.TransportFactory = guardedTransport{nhc.Expert.TransportFactory, func(b *pb.MessageBatch) bool {
		if n := self.Load(); n != nil {
			return n.screen(b)
		}
		return true
	}, func() bool { // a snapshot from the leader would fill a nearly full disk
		n := self.Load()
		return n == nil || !n.diskLow.Load()
	}}
	initial := map[uint64]dragonboat.Target{}
	if fresh && !c.Join {
		for _, m := range meta.Members {
			initial[m.ReplicaID] = m.Address
		}
	}
	for i := 0; i < meta.Shards; i++ {
		s := &shard{n: n, idx: i, id: uint64(i + 1), clients: newRequestClients(maxInFlight),
			keepAlives: newRequestClients(maxKeepAlivesInFlight),
			noop:       client.NewNoOPSession(uint64(i+1), random.LockGuardedRand)}
		s.hub = newHub(s)
		s.keeper = newKeeper(s)
		epoch := make(chan struct{})
		s.leaderEpoch.Store(&epoch)
		n.shards = append(n.shards, s)
	}
	n.nhc = nhc
	if err := n.startNodeHost(initial, fresh && c.Join); err != nil {
		n.self.Store(nil) // see leaderListener
		return nil, err
	}
	// fail closes the NodeHost running now (fixRole may have replaced the
	// first one, or left none).
	fail := func(err error) (*Node, error) {
		if n.nh != nil {
			n.nh.Close()
		}
		n.self.Store(nil)
		if cause := n.Err(); cause != nil { // what made the step fail
			return nil, cause
		}
		return nil, err
	}
	if fresh {
		// Written only once every shard started, so a failed first Open
		// leaves a DataDir that the next Open treats as new again.
		if err := saveMeta(c.fs(), c.DataDir, meta); err != nil {
			return fail(fmt.Errorf("coord: DataDir: %w", err))
		}
	} else {
		// Serve nothing older than what this member served before it stopped:
		// wait until every shard has replayed its snapshot and local log.
		if err := n.waitReplayed(ctx); err != nil {
			return fail(err)
		}
		if err := n.fixRole(ctx); err != nil {
			return fail(err)
		}
	}
	if c.AdminAddress != "" {
		if err := n.serveAdmissions(); err != nil {
			return fail(err)
		}
	}
	for _, s := range n.shards {
		n.wg.Add(1)
		go s.keeper.run()
	}
	if !fresh || !c.Join {
		// A joiner is never the only voter of a shard: it was admitted by
		// the shard's leader.
		n.wg.Add(1)
		go n.campaignAlone(uint64(len(initial)))
	}
	if c.ObserverGracePeriod > 0 {
		n.wg.Add(1)
		go n.reap()
	}
	n.wg.Add(1)
	go n.watchRoles()
	if c.DiskReserve > 0 {
		n.wg.Add(1)
		go n.watchDisk()
	}
	n.opened.Store(true)
	if err := n.Err(); err != nil { // found during Open (fail)
		n.shutdown(false)
		return nil, err
	}
	n.log.Debug("member started", "replica_id", n.replicaID, "shards", meta.Shards, "fresh", fresh)
	return n, nil
}

// engineConfig sizes dragonboat's worker pools: one worker of each kind per
// shard, at most 16 (dragonboat's default).
func engineConfig(shards int) config.EngineConfig {
	w := uint64(min(max(shards, 1), 16))
	return config.EngineConfig{ExecShards: w, CommitShards: w, ApplyShards: w, SnapshotShards: w, CloseShards: w}
}

// startNodeHost starts dragonboat's NodeHost and this member's replica of
// every shard, in the role meta records.
func (n *Node) startNodeHost(initial map[uint64]dragonboat.Target, join bool) error {
	nh, err := dragonboat.NewNodeHost(n.nhc)
	if err != nil {
		return fmt.Errorf("coord: starting member %q: %w", n.cfg.Name, err)
	}
	if nh == nil { // NewNodeHost recovers a panic that is not an error, and returns nothing
		return fmt.Errorf("coord: starting member %q: dragonboat failed to start (see the log)", n.cfg.Name)
	}
	n.nh = nh
	n.host.Store(nh)
	for _, s := range n.shards {
		if err := n.startShard(s, initial, join, n.meta.Observer); err != nil {
			nh.Close()
			return err
		}
	}
	return nil
}

// startShard starts this member's replica of s.
func (n *Node) startShard(s *shard, initial map[uint64]dragonboat.Target, join, observer bool) error {
	c := &n.cfg
	rc := config.Config{
		ReplicaID:          n.replicaID,
		ShardID:            s.id,
		CheckQuorum:        true,
		PreVote:            true,
		ElectionRTT:        uint64(c.ElectionTimeout / c.HeartbeatInterval),
		HeartbeatRTT:       1,
		SnapshotEntries:    c.SnapshotEntries,
		CompactionOverhead: c.CompactionOverhead,
		IsNonVoting:        observer,
	}
	create := func(shardID, replicaID uint64) dbsm.IConcurrentStateMachine {
		m := sm.New(s)
		s.machine.Store(m)
		return timedMachine{m, &n.metrics.apply}
	}
	if err := n.nh.StartConcurrentReplica(initial, join, create, rc); err != nil {
		return fmt.Errorf("coord: starting shard %d: %w", s.idx, err)
	}
	return nil
}

// fixRole restarts, as a voter, the replicas of an observer that was
// promoted (PromoteMember) since it last started: dragonboat must be told a
// replica's role when it starts it, and the role lives in the replicated
// membership, which is known only once the replica has replayed its log.
func (n *Node) fixRole(ctx context.Context) error {
	if !n.meta.Observer {
		return nil
	}
	// The role is read from the membership the replica applied, so wait
	// until it applied the last membership change in its local log (the
	// replay of proposals does not cover those).
	want := map[uint64]uint64{} // shard ID -> index of its last logged membership change
	for _, s := range n.shards {
		lr, err := n.nh.GetLogReader(s.id)
		if err != nil {
			return fmt.Errorf("coord: shard %d: %w", s.idx, err)
		}
		want[s.id], _ = lastConfigChange(lr, 0)
	}
	var promoted map[uint64]bool
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for attempt := 0; ; attempt++ {
		info := n.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
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
		if applied == len(n.shards) || !n.backoff(wctx, attempt) {
			break
		}
	}
	if len(promoted) == 0 {
		return nil
	}
	if len(promoted) < len(n.shards) {
		// An interrupted PromoteMember: the promoted replicas run as voters
		// already (replaying their promotion made them so); call
		// PromoteMember again to finish, and the next restart settles.
		n.log.Warn("promoted to voter in some shards only; run PromoteMember again", "shards", len(promoted))
		return nil
	}
	n.log.Info("this observer was promoted to voter; restarting as a voter")
	for _, s := range n.shards {
		// A replica started as a voter panics when it replays the entry that
		// added it as an observer: snapshot first, so that the replay starts
		// after that entry. Rejected means nothing was applied since the
		// last snapshot, which then already holds the promotion.
		sctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
		_, err := n.nh.SyncRequestSnapshot(sctx, s.id, dragonboat.SnapshotOption{})
		cancel()
		if err != nil && !errors.Is(err, dragonboat.ErrRejected) {
			return fmt.Errorf("coord: snapshot before restarting shard %d as a voter: %w", s.idx, err)
		}
	}
	// Restart the whole NodeHost rather than single replicas: a replica
	// stopped and started again inside one NodeHost sometimes could not
	// commit once elected leader (TestPromoteObserverAndItRestartsAsAVoter).
	n.host.Store(nil)
	n.nh.Close()
	n.nh = nil // Open's fail closes only a NodeHost left running
	n.meta.Observer = false
	if err := saveMeta(n.cfg.fs(), n.cfg.DataDir, n.meta); err != nil {
		return fmt.Errorf("coord: DataDir: %w", err)
	}
	for _, s := range n.shards {
		s.recovered.Store(false)
	}
	if err := n.startNodeHost(nil, false); err != nil {
		return err
	}
	return n.waitReplayed(ctx)
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
// ordinary election timeout then takes over. It ends early when Close
// begins.
func (n *Node) campaignAlone(bootstrap uint64) {
	defer n.wg.Done()
	ctx, cancel := n.bgContext(n.cfg.ElectionTimeout)
	defer cancel()
	want := map[uint64]uint64{} // shard ID -> last membership change to apply first
	for _, s := range n.shards {
		// Read applied before the membership below, which then reflects
		// every change up to it: dragonboat applies entries in order and
		// updates the membership as it applies a change. Only the log after
		// it needs reading.
		var applied uint64
		if m := s.machine.Load(); m != nil {
			applied = m.View().Applied()
		}
		lr, err := n.nh.GetLogReader(s.id)
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
		info := n.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
		for _, si := range info.ShardInfoList {
			w, ok := want[si.ShardID]
			if !ok {
				continue
			}
			switch kick, settled := campaignNow(si, w, n.replicaID); {
			case kick:
				n.peers.TimeoutNow(si.ShardID, n.replicaID)
			case settled:
				delete(want, si.ShardID)
			}
		}
		if len(want) == 0 || !n.backoff(ctx, attempt) {
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
func (n *Node) waitReplayed(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute) // a huge log still ends the wait
	defer cancel()
	for _, s := range n.shards {
		lr, err := n.nh.GetLogReader(s.id)
		if err != nil {
			return fmt.Errorf("coord: shard %d: %w", s.idx, err)
		}
		st, _ := lr.NodeState()
		for attempt := 0; !n.replayed(s, lr, st.Commit); attempt++ {
			if !n.backoff(ctx, attempt) {
				n.log.Warn("replica still replaying its log; serving it as is", "shard", s.idx, "commit", st.Commit)
				break
			}
		}
	}
	return nil
}

// replayed reports whether shard s has applied every proposal up to commit.
func (n *Node) replayed(s *shard, lr dragonboat.ReadonlyLogReader, commit uint64) bool {
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

func deploymentID(token string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(token))
	if v := h.Sum64(); v != 0 {
		return v
	}
	return 1
}

// Name returns this member's name.
func (n *Node) Name() string { return n.cfg.Name }

// Shards returns the cluster's shard count.
func (n *Node) Shards() int { return len(n.shards) }

// ShardOf returns the shard that holds key: keys with the same first path
// segment ("/orders/a" and "/orders/b": "orders") always share a shard.
func (n *Node) ShardOf(key string) int { return shardIndex(key, len(n.shards)) }

func firstSegment(key string) string {
	k := strings.TrimPrefix(key, "/")
	if i := strings.IndexByte(k, '/'); i >= 0 {
		return k[:i]
	}
	return k
}

func shardIndex(key string, shards int) int {
	if shards == 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(firstSegment(key)))
	return int(h.Sum32() % uint32(shards))
}

// rangeShard returns the one shard holding every key of [key, end), or -1
// when the range may span shards.
func (n *Node) rangeShard(key, end string) int {
	if len(n.shards) == 1 || end == "" {
		return n.ShardOf(key)
	}
	// A range inside one directory "/seg/" (or "seg/") stays in one shard.
	k := strings.TrimPrefix(key, "/")
	i := strings.IndexByte(k, '/')
	if i < 0 {
		return -1
	}
	dir := key[:len(key)-len(k)+i+1]
	if end != "\x00" && end <= prefixEnd(dir) && strings.HasPrefix(key, dir) {
		return n.ShardOf(key)
	}
	return -1
}

// Ready blocks until every shard has a leader and this member has caught up
// with it (a linearizable read succeeds on every shard), or ctx ends.
func (n *Node) Ready(ctx context.Context) error {
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	for _, s := range n.shards {
		if _, err := n.read(ctx, s, false); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, n.cfg.RequestTimeout)
}

// bgContext is the context of one step of background work: it ends after d,
// or as soon as the node starts closing, so Close never waits out a
// request that cannot complete.
func (n *Node) bgContext(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (n *Node) check(ctx context.Context) error {
	if n.closed.Load() {
		return n.errClosed()
	}
	return ctx.Err()
}

// backoff waits before retrying a dropped request; false when ctx or the
// node ended first.
func (n *Node) backoff(ctx context.Context, attempt int) bool {
	d := time.Duration(1<<min(attempt, 6)) * time.Millisecond // 1ms .. 64ms
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-n.stop:
		return false
	}
}

// read returns a view of shard s: after a ReadIndex round (linearizable), or
// this replica's latest (serializable, no network).
func (n *Node) read(ctx context.Context, s *shard, serializable bool) (*sm.View, error) {
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	if serializable {
		return s.machine.Load().View(), nil
	}
	if f := hooks.SkipReadIndex.Load(); f != nil && (*f)(n.cfg.Name) {
		return s.machine.Load().View(), nil
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(n.cfg.RequestTimeout)
	}
	timeouts := 0
	for attempt := 0; ; attempt++ {
		// A ReadIndex request forwarded to a leader can be lost (a leader
		// change, a member joining) and dragonboat then waits for the whole
		// deadline. Reads are idempotent: bound each attempt and retry.
		v, err := n.readOnce(ctx, s, min(time.Until(deadline), n.readAttemptTimeout(timeouts)))
		if err == nil {
			return v, nil
		}
		expired := ctx.Err() != nil || time.Until(deadline) < n.cfg.HeartbeatInterval
		if errors.Is(err, dragonboat.ErrTimeout) && !expired {
			if !errors.Is(err, errLeaderChanged) {
				timeouts++
			}
			continue
		}
		if retryable(err) && !expired && n.backoff(ctx, attempt) {
			continue
		}
		if n.closed.Load() {
			return nil, n.errClosed()
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, fmt.Errorf("coord: %w", ctx.Err())
		}
		// ErrTimeoutTooSmall: too little of the deadline is left to try.
		if (expired || errors.Is(err, dragonboat.ErrTimeoutTooSmall)) && (retryable(err) ||
			errors.Is(err, dragonboat.ErrTimeout) || errors.Is(err, dragonboat.ErrTimeoutTooSmall)) {
			// The deadline passed while attempts timed out or found no
			// leader: say which, without dragonboat's wording.
			if l, _, ok, lerr := n.nh.GetLeaderID(s.id); retryable(err) || lerr != nil || !ok || l == 0 {
				return nil, fmt.Errorf("%w: shard %d: %w", ErrNoLeader, s.idx, context.DeadlineExceeded)
			}
			return nil, fmt.Errorf("coord: shard %d: the leader did not confirm a linearizable read in time: %w", s.idx, context.DeadlineExceeded)
		}
		return nil, translate(ctx, err, false)
	}
}

// readOnce makes one ReadIndex round for shard s, bounded by timeout
// (rounded down to Raft ticks) and by ctx, and returns the replica's view
// once it has applied the read index. Its errors are dragonboat's, as
// SyncRead reports them. Like proposeOnce, it costs no context or timer.
func (n *Node) readOnce(ctx context.Context, s *shard, timeout time.Duration) (*sm.View, error) {
	if timeout < n.cfg.HeartbeatInterval {
		return nil, dragonboat.ErrTimeoutTooSmall
	}
	changed := s.epoch()
	rs, err := n.nh.ReadIndex(s.id, timeout)
	if err != nil {
		return nil, err
	}
	if _, err := awaitRequest(ctx, rs, changed); err != nil {
		return nil, err
	}
	v, err := n.nh.ReadLocalNode(rs, nil)
	rs.Release()
	if err != nil {
		return nil, err
	}
	return v.(*sm.View), nil
}

// awaitRequest waits for an asynchronous request's outcome, for ctx, or
// for leaderChanged to close, and reports a failure with the error
// dragonboat's Sync calls give for it (errLeaderChanged, a timeout, when the
// leader changed first).
func awaitRequest(ctx context.Context, rs *dragonboat.RequestState, leaderChanged <-chan struct{}) (dragonboat.RequestResult, error) {
	select {
	case r := <-rs.AppliedC():
		return requestOutcome(r)
	case <-leaderChanged:
		select {
		case r := <-rs.AppliedC(): // an outcome that is there already wins
			return requestOutcome(r)
		default:
			return dragonboat.RequestResult{}, errLeaderChanged
		}
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return dragonboat.RequestResult{}, dragonboat.ErrTimeout
		}
		return dragonboat.RequestResult{}, dragonboat.ErrCanceled
	}
}

// requestOutcome is r with the error dragonboat's Sync calls give for it.
func requestOutcome(r dragonboat.RequestResult) (dragonboat.RequestResult, error) {
	switch {
	case r.Completed():
		return r, nil
	case r.Rejected():
		return r, dragonboat.ErrRejected
	case r.Timeout():
		return r, dragonboat.ErrTimeout
	case r.Terminated():
		return r, dragonboat.ErrShardClosed
	case r.Dropped():
		return r, dragonboat.ErrShardNotReady
	case r.Aborted():
		return r, dragonboat.ErrAborted
	}
	return r, fmt.Errorf("coord: unknown request outcome %v", r)
}

// readAttemptTimeout bounds a ReadIndex round after timeouts earlier rounds
// timed out: a healthy one takes a network round trip; a leader change
// takes about an election timeout. The first rounds are short, because the
// usual loss is a request made in the instant a replica learns of its
// leader (a member that just started or joined, whose Ready would
// otherwise wait out a whole bound); later ones grow to two election
// timeouts.
func (n *Node) readAttemptTimeout(timeouts int) time.Duration {
	long := max(2*n.cfg.ElectionTimeout, 500*time.Millisecond)
	return min(long, max(5*n.cfg.HeartbeatInterval, 250*time.Millisecond)<<min(timeouts, 8))
}

// maxInFlight bounds the writes one member has in flight per shard. Past
// it, writers wait here for a turn, within their context, instead of piling
// into dragonboat's queues, which drop what does not fit without telling the
// proposer. With maxKeepAlivesInFlight it is also the number of request
// clients (sm.Command.Client) a member uses per shard, which the state
// machine's request table must hold for every member at once
// (sm.maxRequests is 16,384).
const maxInFlight = 256

// maxKeepAlivesInFlight is the lane of request clients kept for lease
// keep-alives, so that they never queue behind maxInFlight writes.
const maxKeepAlivesInFlight = 16

// requestClient proposes one request at a time to a shard, numbering them
// with increasing seq, so the state machine can tell a retry of its
// latest request from a new one.
type requestClient struct {
	id   uint64
	seq  uint64
	pool chan *requestClient // the pool it returns to
}

// newRequestClients returns a pool of n request clients, each with a random
// ID: IDs are not reused across restarts or members.
func newRequestClients(n int) chan *requestClient {
	ch := make(chan *requestClient, n)
	for range n {
		id := rand.Uint64()
		for id == 0 {
			id = rand.Uint64()
		}
		ch <- &requestClient{id: id, pool: ch}
	}
	return ch
}

// propose commits cmd to shard s and returns its result once applied here.
//
// Each attempt is bounded: dragonboat silently drops a proposal that a
// follower forwards to a leader whose queue is full, or that a leader loses
// as it steps down, and the proposer would otherwise wait for its whole
// deadline. An attempt that times out is proposed again under the same
// request ID, which the state machine applies at most once.
//
// Attempts use dragonboat's asynchronous Propose, whose timeout runs on
// Raft ticks: a write costs no context or timer of its own (they were a
// tenth of all CPU under load), only the caller's deadline, or
// Config.RequestTimeout when it has none.
func (n *Node) propose(ctx context.Context, s *shard, cmd *sm.Command) (*sm.Result, error) {
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	if n.diskLow.Load() && growsLog(cmd.Kind) {
		return nil, ErrNoSpace
	}
	start := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = start.Add(n.cfg.RequestTimeout)
	}
	rc, err := n.requestClient(ctx, s, cmd.Kind == sm.CmdKeepAlive)
	if err != nil {
		return nil, err
	}
	// The next request gets a new seq even if this one's outcome stays
	// unknown: a late copy of it is then refused as stale.
	rc.seq++
	defer func() { rc.pool <- rc }()
	c := *cmd
	c.Client, c.Seq = rc.id, rc.seq
	b := sm.EncodeCommand(&c)
	if len(b) > n.cfg.MaxRequestBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrRequestTooLarge, len(b), n.cfg.MaxRequestBytes)
	}
	sent := false // an attempt may have entered the log
	done := func(err error) {
		n.metrics.proposals.Add(1)
		n.metrics.propose.observe(time.Since(start))
		if err != nil {
			n.metrics.failures.Add(1)
		}
	}
	for attempt := 0; ; attempt++ {
		data, err := n.proposeOnce(ctx, s, b, min(time.Until(deadline), n.proposeAttemptTimeout()))
		if err == nil {
			done(nil)
			res, derr := sm.DecodeResult(data)
			if derr != nil {
				return nil, fmt.Errorf("coord: shard %d: undecodable result: %w", s.idx, derr)
			}
			return res, nil
		}
		inFlight := errors.Is(err, dragonboat.ErrTimeout) || errors.Is(err, dragonboat.ErrCanceled)
		sent = sent || inFlight
		// Expired: no time for another attempt (one needs a Raft tick).
		expired := ctx.Err() != nil || time.Until(deadline) < n.cfg.HeartbeatInterval
		if errors.Is(err, dragonboat.ErrTimeout) && !expired {
			n.metrics.retries.Add(1)
			continue
		}
		// Dropped before entering the log: safe to send again.
		if retryable(err) && !expired && n.backoff(ctx, attempt) {
			continue
		}
		if !retryable(err) || sent {
			done(err)
		}
		if n.closed.Load() {
			if retryable(err) && !sent {
				return nil, n.errClosed()
			}
			return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, n.errClosed())
		}
		dropped := retryable(err) || errors.Is(err, dragonboat.ErrTimeoutTooSmall)
		switch {
		case sent && (expired || dropped):
			cause := ctx.Err()
			if cause == nil {
				cause = context.DeadlineExceeded
			}
			return nil, fmt.Errorf("%w: shard %d: %w", ErrOutcomeUnknown, s.idx, cause)
		case ctx.Err() != nil && !inFlight:
			// Only dropped attempts were made, so nothing was applied.
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && dropped && attempt > 0 {
				return nil, fmt.Errorf("%w: shard %d: %w", ErrNoLeader, s.idx, context.DeadlineExceeded)
			}
			return nil, fmt.Errorf("coord: %w", ctx.Err())
		case expired && dropped && attempt > 0:
			return nil, fmt.Errorf("%w: shard %d: %w", ErrNoLeader, s.idx, context.DeadlineExceeded)
		case expired && dropped:
			return nil, fmt.Errorf("coord: %w (%v)", context.DeadlineExceeded, err)
		}
		return nil, translate(ctx, err, true)
	}
}

// proposeOnce makes one attempt to commit b, bounded by timeout (rounded
// down to Raft ticks) and by ctx, and returns the result's data. Its errors
// are dragonboat's, as SyncPropose reports them.
func (n *Node) proposeOnce(ctx context.Context, s *shard, b []byte, timeout time.Duration) ([]byte, error) {
	if timeout < n.cfg.HeartbeatInterval {
		return nil, dragonboat.ErrTimeoutTooSmall
	}
	changed := s.epoch()
	rs, err := n.nh.Propose(s.noop, b, timeout)
	if err != nil {
		return nil, err
	}
	r, err := awaitRequest(ctx, rs, changed)
	if err != nil {
		return nil, err
	}
	rs.Release()
	return r.GetResult().Data, nil
}

// requestClient takes one of shard s's request clients, waiting within ctx
// (or Config.RequestTimeout) when all are busy. A write takes one of the
// write clients; a keep-alive takes whichever is free first of its own
// lane's and the writes', so it never waits behind writes and is not held
// to its lane's size when writes leave clients free.
func (n *Node) requestClient(ctx context.Context, s *shard, keepAlive bool) (*requestClient, error) {
	var lane chan *requestClient // nil for a write: never ready
	if keepAlive {
		lane = s.keepAlives
	}
	select {
	case rc := <-lane:
		return rc, nil
	case rc := <-s.clients:
		return rc, nil
	default:
	}
	wctx, cancel := n.withTimeout(ctx)
	defer cancel()
	select {
	case rc := <-lane:
		return rc, nil
	case rc := <-s.clients:
		return rc, nil
	case <-wctx.Done():
		return nil, fmt.Errorf("coord: shard %d: waiting behind %d requests in flight: %w", s.idx, cap(s.clients)+cap(lane), wctx.Err())
	case <-n.stop:
		return nil, n.errClosed()
	}
}

// proposeAttemptTimeout bounds one attempt of a write: a healthy one takes
// a round trip and an fsync or two; a leader change takes about an election
// timeout.
func (n *Node) proposeAttemptTimeout() time.Duration {
	return max(2*n.cfg.ElectionTimeout, time.Second)
}

func (n *Node) header(s *shard, rev int64) Header {
	_, term, _, _ := n.nh.GetLeaderID(s.id)
	return Header{Shard: s.idx, Revision: Revision(rev), RaftTerm: term, Member: n.cfg.Name}
}

func codeErr(c sm.Code) error {
	switch c {
	case sm.CodeOK:
		return nil
	case sm.CodeLeaseNotFound:
		return ErrLeaseNotFound
	case sm.CodeCompacted:
		return ErrCompacted
	case sm.CodeFutureRevision:
		return ErrFutureRevision
	case sm.CodeDuplicateKey:
		return ErrDuplicateKey
	case sm.CodeResultLost:
		return fmt.Errorf("%w: the write was applied once, but its result was too large to keep for the retry that asked", ErrOutcomeUnknown)
	case sm.CodeStale:
		return fmt.Errorf("%w: the write was overtaken by a later one of the same client", ErrOutcomeUnknown)
	}
	return fmt.Errorf("coord: request refused by the state machine (code %d)", c)
}

// Close stops this member: its live Sessions are revoked first (best
// effort, within Config.RequestTimeout), so their keys and locks are
// released at once rather than after their TTL; background work ends, watch
// channels close with ErrClosed, and calls in flight return ErrClosed (or
// ErrOutcomeUnknown for writes already proposed). Where this member leads a
// shard it then hands leadership to another voter, so the others do not wait
// for an election timeout. Close blocks until every goroutine it started has
// ended. It is idempotent; later calls of other methods return ErrClosed.
func (n *Node) Close() error {
	n.shutdown(true)
	return nil
}

// shutdown is Close; unless clean, without the work that tells the cluster
// (sessions revoked, leadership handed over): what a crash leaves.
func (n *Node) shutdown(clean bool) {
	n.closeOnce.Do(func() {
		if clean {
			n.revokeSessions()
			n.transferLeadership()
		}
		n.closed.Store(true)
		close(n.stop)
		if n.admin != nil {
			n.admin.Close()
		}
		n.wg.Wait()
		n.nh.Close()
		n.self.Store(nil) // see leaderListener
	})
}

// transferLeadership hands every shard this member leads to another voter
// and waits, for at most one election timeout, for the handovers.
func (n *Node) transferLeadership() {
	var led []*shard
	for _, s := range n.shards {
		leader, _, ok, err := n.nh.GetLeaderID(s.id)
		if err != nil || !ok || leader != n.replicaID {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ElectionTimeout)
		m, err := n.nh.SyncGetShardMembership(ctx, s.id)
		cancel()
		if err != nil {
			continue
		}
		for id := range m.Nodes {
			if id != n.replicaID {
				if n.nh.RequestLeaderTransfer(s.id, id) == nil {
					led = append(led, s)
				}
				break
			}
		}
	}
	deadline := time.Now().Add(n.cfg.ElectionTimeout)
	for _, s := range led {
		for time.Now().Before(deadline) {
			leader, _, ok, err := n.nh.GetLeaderID(s.id)
			if err != nil || (ok && leader != n.replicaID) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// watchRoles keeps voters current: at once, then whenever a shard's
// membership changes on this member (roleListener).
func (n *Node) watchRoles() {
	defer n.wg.Done()
	for {
		n.refreshRoles()
		select {
		case <-n.stop:
			return
		case <-n.rolesChanged:
		}
	}
}

// refreshRoles reads every shard's voters from the membership this member
// applied (no network).
func (n *Node) refreshRoles() {
	info := n.nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true})
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
	n.voters.Store(&voters)
}

// isObserver reports whether replicaID is taken for a non-voting member of
// the shard: the shard's membership is known here and does not list it
// among the voters. Every replica of a shard whose membership is not known
// yet counts as a voter. A voter not yet applied here counts as an observer
// until the MembershipChanged event is handled, a moment; meanwhile its
// heartbeats are thinned to one per half election timeout.
func (n *Node) isObserver(shardID, replicaID uint64) bool {
	vs := n.voters.Load()
	if vs == nil {
		return false
	}
	v, ok := (*vs)[shardID]
	return ok && !v[replicaID]
}
