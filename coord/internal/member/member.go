// Package member assembles one coordkit member from the parts, and is what
// package coord's Node stands on: coord checks and converts, member runs.
//
// Open decides who the member is (boot), starts its Raft side (raftnode)
// with a watch hub (watch) and a lease keeper (lease) following each
// shard's state machine, saves the member file (meta), and starts the
// member's background work: each shard's lease keeper and history
// compactor (compactor), the admission service and the observer reaper
// (admit). Shutdown and Crash end all of it; every goroutine the member
// starts, including those started with Go, has ended when they return.
//
// Range, Delete and List serve a request on the one shard that holds its
// keys, or, for a range that spans shards, on every shard, merged.
//
// Everything here is safe for concurrent use once Open has returned.
package member

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord/internal/admit"
	"github.com/coordkit/coordkit/coord/internal/boot"
	"github.com/coordkit/coordkit/coord/internal/compactor"
	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/integrity"
	"github.com/coordkit/coordkit/coord/internal/lease"
	"github.com/coordkit/coordkit/coord/internal/members"
	"github.com/coordkit/coordkit/coord/internal/meta"
	"github.com/coordkit/coordkit/coord/internal/metric"
	"github.com/coordkit/coordkit/coord/internal/raftnode"
	"github.com/coordkit/coordkit/coord/internal/request"
	"github.com/coordkit/coordkit/coord/internal/sm"
	"github.com/coordkit/coordkit/coord/internal/watch"
)

// Member is one running member: its parts, and the work it started.
type Member struct {
	// Cfg is the Settings with defaults, and the name, token, address and
	// shard count of the member DataDir holds. Read-only.
	Cfg      Settings
	Log      *slog.Logger     // Cfg.Logger, with the member's name
	Host     *raftnode.Host   // the Raft side: NodeHost, requests, the member's life
	Members  *members.Manager // membership reads and changes
	Leases   lease.Set        // grants, keep-alives, revokes over the shards
	Sessions lease.Sessions   // live sessions, revoked by Shutdown
	Shards   []*Shard
	// ReapTimes is the time of each pass of the observer reaper.
	ReapTimes metric.Histogram

	file  *meta.Member  // the member file
	key   []byte        // the cluster key: see meta.ClusterKey
	admin *admit.Server // the admission service, when AdminAddress is set

	wg        sync.WaitGroup // the goroutines the member started
	closeOnce sync.Once
}

// Shard is this member's replica of one Raft group, with the watches and
// lease deadlines that follow its state machine (it is the machine's
// sm.Listener).
type Shard struct {
	*raftnode.Shard
	Hub     *watch.Hub
	Keeper  *lease.Keeper
	Checker *integrity.Checker
}

// The shard's sm.Listener: watchers follow its events, the keeper its
// leases, the checker its integrity checks.

func (s *Shard) Applied(rev int64, events []sm.Event)     { s.Hub.Applied(rev, events) }
func (s *Shard) Recovered(v *sm.View)                     { s.Hub.Recovered(v) }
func (s *Shard) LeaseRenewed(id, ttl int64, renew uint64) { s.Keeper.LeaseRenewed(id, ttl, renew) }
func (s *Shard) LeaseGone(id int64)                       { s.Keeper.LeaseGone(id) }
func (s *Shard) LeasesReset(leases []sm.LeaseInfo)        { s.Keeper.LeasesReset(leases) }
func (s *Shard) HashCheck(index uint64, v *sm.View)       { s.Checker.Requested(index, v) }

// Open starts a member, as coord.Open documents; given is the Config as
// the caller gave it, before defaults.
func Open(ctx context.Context, given Settings) (*Member, error) {
	c := given.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := meta.MkdirAllSynced(c.DataFS(), c.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("coord: DataDir: %w", err)
	}
	mf, key, err := c.resolve(ctx, &given)
	if err != nil {
		return nil, err
	}
	fresh := mf.Version == 0 // not saved yet
	m := &Member{Cfg: c, Log: c.Logger.With("member", c.Name), file: mf, key: key}
	for range mf.Shards {
		m.Shards = append(m.Shards, m.newShard(len(m.Shards)))
	}
	initial := map[uint64]string{}
	if fresh && !c.Join {
		for _, fm := range mf.Members {
			initial[fm.ReplicaID] = fm.Address
		}
	}
	host, err := raftnode.Start(m.hostConfig(), initial, fresh && c.Join)
	if err != nil {
		return nil, err
	}
	m.Host = host
	m.Members = members.New(host, mf.Members, c.ElectionTimeout)
	for i, s := range host.Shards() {
		m.Shards[i].Shard = s
		m.Leases.Shards = append(m.Leases.Shards, s)
		m.Leases.Keepers = append(m.Leases.Keepers, m.Shards[i].Keeper)
	}
	if fresh {
		// Written only once every shard started, so a failed first Open
		// leaves a DataDir that the next Open treats as new again.
		err = meta.Save(c.DataFS(), c.DataDir, mf)
		if err != nil {
			err = fmt.Errorf("coord: DataDir: %w", err)
		}
	} else {
		err = host.Recover(ctx)
	}
	if err == nil && c.AdminAddress != "" {
		m.admin, err = admit.Listen(admit.ServerConfig{Address: c.AdminAddress, TLS: c.TLS, Key: key,
			Token: c.ClusterToken, RequestTimeout: c.RequestTimeout, Members: m.Members, Shards: len(m.Shards), Logger: m.Log})
	}
	if err != nil {
		host.Close()
		if cause := host.Err(); cause != nil { // what made the step fail
			return nil, cause
		}
		return nil, err
	}
	m.Sessions = lease.Sessions{Leases: &m.Leases, Member: host.Context(), RequestTimeout: c.RequestTimeout, Go: m.Go, Logger: m.Log}
	m.startWork()
	// A joiner is never the only voter of a shard: it was admitted by the
	// shard's leader; so only a founder or a restarted member campaigns
	// alone.
	if err := host.Run(!fresh || !c.Join, uint64(len(initial))); err != nil { // found during Open
		m.Crash()
		return nil, err
	}
	m.Log.Debug("member started", "replica_id", mf.ReplicaID, "shards", mf.Shards, "fresh", fresh)
	return m, nil
}

// resolve decides who this member is (boot.Resolve): c, with defaults,
// gets the name, token, address and shard count of the member DataDir
// holds; given is the Config as given.
func (c *Settings) resolve(ctx context.Context, given *Settings) (*meta.Member, []byte, error) {
	id := boot.Config{Name: c.Name, DataDir: c.DataDir, RaftAddress: c.RaftAddress, ClusterToken: c.ClusterToken,
		InitialCluster: c.InitialCluster, Join: c.Join, Observer: c.Observer, JoinSeeds: c.JoinSeeds, DNSResolver: c.DNSResolver, Shards: c.Shards,
		DefaultShards: DefaultShards, ClusterSecret: c.ClusterSecret, TLS: c.TLS, RequestTimeout: c.RequestTimeout,
		FS: c.DataFS(), Logger: c.Logger, GivenName: given.Name, GivenToken: given.ClusterToken, GivenAddress: given.RaftAddress}
	mf, key, err := boot.Resolve(ctx, &id)
	if err != nil {
		return nil, nil, err
	}
	c.Name, c.ClusterToken, c.RaftAddress, c.Shards = id.Name, id.ClusterToken, id.RaftAddress, id.Shards
	return mf, key, nil
}

// newShard is shard i, its watch hub and lease keeper ready before its
// replica starts.
func (m *Member) newShard(i int) *Shard {
	c := &m.Cfg
	s := &Shard{}
	s.Hub = watch.NewHub(c.Name, func() *sm.View { return s.View() })
	s.Keeper = lease.NewKeeper(s, lease.Config{Self: m.file.ReplicaID, Period: min(c.HeartbeatInterval, 100*time.Millisecond),
		ElectionTimeout: c.ElectionTimeout, RequestTimeout: c.RequestTimeout, Logger: m.Log.With("shard", i)})
	s.Checker = integrity.New(s, m.file.ReplicaID, c.RequestTimeout, m.Log.With("shard", i))
	return s
}

// startWork starts the member's background work that is not the Raft
// side's: each shard's lease keeper and compactor, the admission service,
// the observer reaper. Each ends with the member (Host.Context).
func (m *Member) startWork() {
	c, ctx := &m.Cfg, m.Host.Context()
	for _, s := range m.Shards {
		m.Go(func() { s.Keeper.Run(ctx) })
		m.Go(func() { s.Checker.Run(ctx, c.HashCheckInterval) })
		if c.HistoryRetention >= 0 {
			m.Go(func() { compactor.Run(ctx, s, c.HistoryRetention, c.RequestTimeout, m.Log.With("shard", s.Index)) })
		}
	}
	if m.admin != nil {
		m.Go(m.admin.Serve)
	}
	if c.ObserverGracePeriod > 0 {
		m.Go(func() {
			admit.Reap(ctx, admit.ReapConfig{Grace: c.ObserverGracePeriod, RequestTimeout: c.RequestTimeout,
				Shard0: m.Shards[0].Shard, Members: m.Members, Heard: m.Host.Heard, Times: &m.ReapTimes, Logger: m.Log})
		})
	}
}

// hostConfig is the Raft side's configuration.
func (m *Member) hostConfig() raftnode.Config {
	c, mf := &m.Cfg, m.file
	return raftnode.Config{
		Name: c.Name, DataDir: c.DataDir, RaftAddress: c.RaftAddress, ClusterToken: c.ClusterToken,
		ReplicaID: mf.ReplicaID, Shards: mf.Shards, LogDBShards: mf.LogDBShards, Observer: mf.Observer,
		HeartbeatInterval: c.HeartbeatInterval, ElectionTimeout: c.ElectionTimeout, RequestTimeout: c.RequestTimeout,
		SnapshotEntries: c.SnapshotEntries, CompactionOverhead: c.CompactionOverhead,
		MaxRequestBytes: c.MaxRequestBytes, DiskReserve: c.DiskReserve,
		Key: m.key, TLS: c.TLS, FS: c.FS, DiskFree: c.DiskFree, WrapTransport: c.WrapTransport, Logger: c.Logger,
		Listener: func(i int) sm.Listener { return m.Shards[i] },
		Leading:  func(i int) { m.Shards[i].Keeper.Leading() },
		Promoted: func() error {
			mf.Observer = false
			if err := meta.Save(c.DataFS(), c.DataDir, mf); err != nil {
				return fmt.Errorf("coord: DataDir: %w", err)
			}
			return nil
		},
		Failed: func(error) { m.Crash() },
	}
}

// Room refuses a write that would grow shard s's store while the store is
// at its quota (Settings.MaxStoreBytes): it raises the shard's NOSPACE
// alarm through Raft, once, and returns an error wrapping ErrNoSpace.
// While the alarm is raised, the state machine itself refuses every
// member's growing writes, so replicas agree on what was refused.
func (m *Member) Room(ctx context.Context, s *Shard) error {
	q := m.Cfg.MaxStoreBytes
	if q <= 0 {
		return nil
	}
	bytes, noSpace := s.Usage() // not s.View(): a view per write would make writes copy the trees
	if bytes < q {
		return nil
	}
	if !noSpace {
		res, err := s.Propose(ctx, &sm.Command{Kind: sm.CmdAlarm, Alarm: sm.AlarmNoSpace, Activate: true})
		if err != nil {
			return err
		}
		if err := res.Code.Err(); err != nil {
			return err
		}
		m.Log.Warn("the shard's store reached its quota: NOSPACE alarm raised; writes that grow it are refused until it is disarmed",
			"shard", s.Index, "bytes", bytes, "quota", q)
	}
	return fmt.Errorf("%w: shard %d holds %d bytes, quota %d (MaxStoreBytes): delete and compact, then disarm the alarm",
		errdefs.ErrNoSpace, s.Index, bytes, q)
}

// Go runs f in a goroutine of the member's: Shutdown and Crash wait for it
// to return, so f must end when the member does (Host.Done).
func (m *Member) Go(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// Limits are the Settings' bounds on one request.
func (m *Member) Limits() request.Limits {
	return request.Limits{MaxKeyBytes: m.Cfg.MaxKeyBytes, MaxValueBytes: m.Cfg.MaxValueBytes, MaxTxnOps: m.Cfg.MaxTxnOps}
}

// Router routes keys to the member's shards.
func (m *Member) Router() request.Router { return request.Router{Shards: len(m.Shards)} }

// Shutdown stops the member cleanly, as coord.Node.Shutdown documents:
// its live sessions revoked, then the leadership of every shard it leads
// handed over, then the member's work ended. It returns an
// error wrapping ctx's when ctx cut the clean part short. Only the first
// call of Shutdown or Crash does anything; later ones return nil.
func (m *Member) Shutdown(ctx context.Context) error {
	var err error
	m.closeOnce.Do(func() {
		m.Sessions.RevokeAll(ctx)
		m.Host.TransferLeadership(ctx)
		if ctx.Err() != nil {
			err = fmt.Errorf("coord: shutdown cut short: %w", ctx.Err())
		}
		m.stop()
	})
	return err
}

// Crash closes the member without the work that tells the cluster
// (sessions revoked, leadership handed over): what a crash leaves.
func (m *Member) Crash() {
	m.closeOnce.Do(m.stop)
}

// stop ends the member's work and waits for its goroutines.
func (m *Member) stop() {
	m.Host.Stop()
	if m.admin != nil {
		m.admin.Close()
	}
	m.wg.Wait()
	m.Host.Close()
}
