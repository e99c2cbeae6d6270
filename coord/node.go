package coord

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord/internal/admit"
	"github.com/coordkit/coordkit/coord/internal/boot"
	"github.com/coordkit/coordkit/coord/internal/compactor"
	"github.com/coordkit/coordkit/coord/internal/hooks"
	"github.com/coordkit/coordkit/coord/internal/lease"
	"github.com/coordkit/coordkit/coord/internal/members"
	"github.com/coordkit/coordkit/coord/internal/meta"
	"github.com/coordkit/coordkit/coord/internal/metric"
	"github.com/coordkit/coordkit/coord/internal/raftnode"
	"github.com/coordkit/coordkit/coord/internal/request"
	"github.com/coordkit/coordkit/coord/internal/sm"
	"github.com/coordkit/coordkit/coord/internal/watch"
)

func init() {
	hooks.WrapTransport = func(cfg any, wrap func(config.TransportFactory) config.TransportFactory) {
		cfg.(*Config).testTransport = wrap
	}
	hooks.SetFS = func(cfg any, fs vfs.FS) { cfg.(*Config).testFS = fs }
	hooks.SetDiskFree = func(cfg any, free func() (uint64, error)) { cfg.(*Config).testDiskFree = free }
	hooks.Crash = func(node any) { node.(*Node).crash() }
	hooks.StateHashes = func(node any) (revs []int64, hashes []uint64) {
		for _, s := range node.(*Node).shards {
			v := s.View()
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
	cfg     Config
	log     *slog.Logger
	host    *raftnode.Host   // the Raft side: NodeHost, requests, the member's life
	member  *meta.Member     // the member file
	members *members.Manager // membership reads and changes
	leases  lease.Set        // grants, keep-alives, revokes over the shards
	shards  []*shard

	admin     *admit.Server // the admission service, when AdminAddress is set
	key       []byte        // the cluster key: see meta.ClusterKey
	reapTimes metric.Histogram

	sessMu   sync.Mutex
	sessions map[*Session]struct{} // live sessions, revoked by Close

	wg        sync.WaitGroup // the goroutines this package started
	closeOnce sync.Once
}

// shard is this member's replica of one Raft group, with the watches and
// lease deadlines that follow its state machine (it is the machine's
// sm.Listener).
type shard struct {
	*raftnode.Shard
	n      *Node
	hub    *watch.Hub
	keeper *lease.Keeper
}

// The shard's sm.Listener: watchers follow its events, the keeper its
// leases.

func (s *shard) Applied(rev int64, events []sm.Event)     { s.hub.Applied(rev, events) }
func (s *shard) Recovered(v *sm.View)                     { s.hub.Recovered(v) }
func (s *shard) LeaseRenewed(id, ttl int64, renew uint64) { s.keeper.LeaseRenewed(id, ttl, renew) }
func (s *shard) LeaseGone(id int64)                       { s.keeper.LeaseGone(id) }
func (s *shard) LeasesReset(leases []sm.LeaseInfo)        { s.keeper.LeasesReset(leases) }

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
// directory cannot be used, ErrCorrupt naming a file that cannot be
// trusted, or dragonboat's refusal to start (for example the RaftAddress
// already in use). ctx bounds only the start-up.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := meta.MkdirAllSynced(c.fs(), c.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("coord: DataDir: %w", err)
	}
	mf, key, err := c.resolve(ctx, cfg)
	if err != nil {
		return nil, err
	}
	fresh := mf.Version == 0 // not saved yet
	n := &Node{cfg: c, log: c.Logger.With("member", c.Name), member: mf, key: key}
	for range mf.Shards {
		n.shards = append(n.shards, n.newShard(len(n.shards)))
	}
	initial := map[uint64]string{}
	if fresh && !c.Join {
		for _, m := range mf.Members {
			initial[m.ReplicaID] = m.Address
		}
	}
	host, err := raftnode.Start(n.hostConfig(), initial, fresh && c.Join)
	if err != nil {
		return nil, err
	}
	n.host = host
	n.members = members.New(host, mf.Members, c.ElectionTimeout)
	for i, s := range host.Shards() {
		n.shards[i].Shard = s
		n.leases.Shards = append(n.leases.Shards, s)
		n.leases.Keepers = append(n.leases.Keepers, n.shards[i].keeper)
	}
	if fresh {
		// Written only once every shard started, so a failed first Open
		// leaves a DataDir that the next Open treats as new again.
		err = meta.Save(c.fs(), c.DataDir, mf)
		if err != nil {
			err = fmt.Errorf("coord: DataDir: %w", err)
		}
	} else {
		err = host.Recover(ctx)
	}
	if err == nil && c.AdminAddress != "" {
		n.admin, err = admit.Listen(admit.ServerConfig{Address: c.AdminAddress, TLS: c.TLS.files(), Key: key,
			Token: c.ClusterToken, RequestTimeout: c.RequestTimeout, Members: n.members, Shards: len(n.shards), Logger: n.log})
	}
	if err != nil {
		host.Close()
		if cause := host.Err(); cause != nil { // what made the step fail
			return nil, cause
		}
		return nil, err
	}
	n.startWork()
	// A joiner is never the only voter of a shard: it was admitted by the
	// shard's leader; so only a founder or a restarted member campaigns
	// alone.
	if err := host.Run(!fresh || !c.Join, uint64(len(initial))); err != nil { // found during Open
		n.crash()
		return nil, err
	}
	n.log.Debug("member started", "replica_id", mf.ReplicaID, "shards", mf.Shards, "fresh", fresh)
	return n, nil
}

// resolve decides who this member is (boot.Resolve): c, with defaults,
// gets the name, token, address and shard count of the member DataDir
// holds; cfg is the Config as given.
func (c *Config) resolve(ctx context.Context, cfg Config) (*meta.Member, []byte, error) {
	id := boot.Config{Name: c.Name, DataDir: c.DataDir, RaftAddress: c.RaftAddress, ClusterToken: c.ClusterToken,
		InitialCluster: c.InitialCluster, Join: c.Join, Observer: c.Observer, JoinSeeds: c.JoinSeeds, Shards: c.Shards,
		DefaultShards: defaultShards, ClusterSecret: c.ClusterSecret, TLS: c.TLS.files(), RequestTimeout: c.RequestTimeout,
		FS: c.fs(), Logger: c.Logger, GivenName: cfg.Name, GivenToken: cfg.ClusterToken, GivenAddress: cfg.RaftAddress}
	mf, key, err := boot.Resolve(ctx, &id)
	if err != nil {
		return nil, nil, err
	}
	c.Name, c.ClusterToken, c.RaftAddress, c.Shards = id.Name, id.ClusterToken, id.RaftAddress, id.Shards
	return mf, key, nil
}

// newShard is shard i, its watch hub and lease keeper ready before its
// replica starts.
func (n *Node) newShard(i int) *shard {
	c := &n.cfg
	s := &shard{n: n}
	s.hub = watch.NewHub(c.Name, func() *sm.View { return s.View() })
	s.keeper = lease.NewKeeper(s, lease.Config{Self: n.member.ReplicaID, Period: min(c.HeartbeatInterval, 100*time.Millisecond),
		ElectionTimeout: c.ElectionTimeout, RequestTimeout: c.RequestTimeout, Logger: n.log.With("shard", i)})
	return s
}

// startWork starts the member's background work that is not the Raft
// side's: each shard's lease keeper and compactor, the admission service,
// the observer reaper. Each ends with the member (Host.Context); Close
// waits for them.
func (n *Node) startWork() {
	c, ctx := &n.cfg, n.host.Context()
	run := func(f func()) {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			f()
		}()
	}
	for _, s := range n.shards {
		run(func() { s.keeper.Run(ctx) })
		if c.HistoryRetention >= 0 {
			run(func() { compactor.Run(ctx, s, c.HistoryRetention, c.RequestTimeout, n.log.With("shard", s.Index)) })
		}
	}
	if n.admin != nil {
		run(n.admin.Serve)
	}
	if c.ObserverGracePeriod > 0 {
		run(func() {
			admit.Reap(ctx, admit.ReapConfig{Grace: c.ObserverGracePeriod, RequestTimeout: c.RequestTimeout,
				Shard0: n.shards[0].Shard, Members: n.members, Heard: n.host.Heard, Times: &n.reapTimes, Logger: n.log})
		})
	}
}

// hostConfig is the Raft side's configuration.
func (n *Node) hostConfig() raftnode.Config {
	c, mf := &n.cfg, n.member
	hc := raftnode.Config{
		Name: c.Name, DataDir: c.DataDir, RaftAddress: c.RaftAddress, ClusterToken: c.ClusterToken,
		ReplicaID: mf.ReplicaID, Shards: mf.Shards, LogDBShards: mf.LogDBShards, Observer: mf.Observer,
		HeartbeatInterval: c.HeartbeatInterval, ElectionTimeout: c.ElectionTimeout, RequestTimeout: c.RequestTimeout,
		SnapshotEntries: c.SnapshotEntries, CompactionOverhead: c.CompactionOverhead,
		MaxRequestBytes: c.MaxRequestBytes, DiskReserve: c.DiskReserve,
		Key: n.key, TLS: c.TLS.files(), FS: c.testFS, DiskFree: c.testDiskFree, Logger: c.Logger,
		Listener: func(i int) sm.Listener { return n.shards[i] },
		Leading:  func(i int) { n.shards[i].keeper.Leading() },
		Promoted: func() error {
			mf.Observer = false
			if err := meta.Save(c.fs(), c.DataDir, mf); err != nil {
				return fmt.Errorf("coord: DataDir: %w", err)
			}
			return nil
		},
		Failed: func(error) { n.crash() },
	}
	if wrap, ok := c.testTransport.(func(config.TransportFactory) config.TransportFactory); ok {
		hc.WrapTransport = wrap
	}
	return hc
}

// Name returns this member's name.
func (n *Node) Name() string { return n.cfg.Name }

// Shards returns the cluster's shard count.
func (n *Node) Shards() int { return len(n.shards) }

// ShardOf returns the shard that holds key: keys with the same first path
// segment ("/orders/a" and "/orders/b": "orders") always share a shard.
func (n *Node) ShardOf(key string) int { return n.router().ShardOf(key) }

// router routes keys to this cluster's shards.
func (n *Node) router() request.Router { return request.Router{Shards: len(n.shards)} }

// limits are the Config's bounds on one request.
func (n *Node) limits() request.Limits {
	return request.Limits{MaxKeyBytes: n.cfg.MaxKeyBytes, MaxValueBytes: n.cfg.MaxValueBytes, MaxTxnOps: n.cfg.MaxTxnOps}
}

// Ready blocks until every shard has a leader and this member has caught up
// with it (a linearizable read succeeds on every shard), or ctx ends.
func (n *Node) Ready(ctx context.Context) error {
	ctx, cancel := n.host.WithTimeout(ctx)
	defer cancel()
	for _, s := range n.shards {
		if _, err := s.Read(ctx, false); err != nil {
			return err
		}
	}
	return nil
}

// header describes a response of shard s at revision rev.
func (n *Node) header(s *shard, rev int64) Header {
	return Header{Shard: s.Index, Revision: Revision(rev), RaftTerm: s.Term(), Member: n.cfg.Name}
}

// Shutdown stops this member cleanly: its live Sessions are revoked first,
// so their keys and locks are released at once rather than after their TTL;
// where it leads a shard it then hands the leadership to another voter, so
// the others do not wait for an election timeout. Then background work
// ends, watch channels close with ErrClosed, and calls in flight return
// ErrClosed (or ErrOutcomeUnknown for writes already proposed).
//
// ctx bounds the clean part: revokes take at most Config.RequestTimeout
// and handovers an ElectionTimeout, or less when ctx ends first; what is
// left undone then happens as after a crash (leases expire after their
// TTL, an election follows). Shutdown blocks until every goroutine the Node
// started has ended, and returns an error wrapping ctx's when ctx cut the
// clean part short. The Node is closed either way. Later calls return nil;
// later calls of other methods return ErrClosed.
func (n *Node) Shutdown(ctx context.Context) error {
	var err error
	n.closeOnce.Do(func() {
		n.revokeSessions(ctx)
		n.host.TransferLeadership(ctx)
		if ctx.Err() != nil {
			err = fmt.Errorf("coord: shutdown cut short: %w", ctx.Err())
		}
		n.stop()
	})
	return err
}

// Close is Shutdown with no bound but the configured timeouts (at most
// Config.RequestTimeout for the revokes, an ElectionTimeout for the
// handovers), for io.Closer. It is idempotent, and returns nil.
func (n *Node) Close() error {
	return n.Shutdown(context.Background())
}

// crash closes the member without the work that tells the cluster
// (sessions revoked, leadership handed over): what a crash leaves.
func (n *Node) crash() {
	n.closeOnce.Do(n.stop)
}

// stop ends the member's work and waits for its goroutines.
func (n *Node) stop() {
	n.host.Stop()
	if n.admin != nil {
		n.admin.Close()
	}
	n.wg.Wait()
	n.host.Close()
}

// Err returns nil while this member runs, and after Close. When the member
// stopped itself because its state cannot be trusted, it returns why, an
// error wrapping ErrCorrupt; the Node is then closed, and calls fail with
// ErrClosed wrapping the same cause. It does not block.
func (n *Node) Err() error { return n.host.Err() }
