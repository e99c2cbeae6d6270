// Package coordtest starts in-process coordkit clusters for tests and
// examples: N members on loopback, with helpers to stop, restart, cut off and
// heal members and to find a shard's leader. It is for tests only; production
// code never imports it.
package coordtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/internal/hooks"
	"github.com/coordkit/coordkit/internal/freeport"
	"github.com/coordkit/coordkit/internal/proctest"
)

// Option configures New.
type Option func(*options)

type options struct {
	shards        int
	partitionable bool
	powerLoss     bool
	diskFaults    bool
	tweak         func(*coord.Config)
}

// WithShards sets Config.Shards for every member.
func WithShards(n int) Option { return func(o *options) { o.shards = n } }

// WithPartitions puts a filter the harness controls between each member
// and the peer traffic it receives, so Isolate and Heal work. Members talk
// over real loopback TCP either way.
func WithPartitions() Option { return func(o *options) { o.partitionable = true } }

// WithPowerLoss keeps each member's DataDir on a filesystem in memory that
// can lose what was not synced (vfs.NewStrictMem), for PowerLoss. Nothing
// is written to disk. It implies WithPartitions.
func WithPowerLoss() Option { return func(o *options) { o.powerLoss, o.partitionable = true, true } }

// WithDiskFaults is WithPowerLoss, and each member's filesystem fails
// the writes or syncs that FailDisk asks it to.
func WithDiskFaults() Option {
	return func(o *options) { o.powerLoss, o.diskFaults, o.partitionable = true, true, true }
}

// WithConfig lets a test adjust every member's Config after the harness
// filled it in.
func WithConfig(f func(*coord.Config)) Option { return func(o *options) { o.tweak = f } }

// Timing used by test clusters: generous enough to hold on a loaded 2-core
// machine, short enough that failover tests stay quick.
const (
	HeartbeatInterval = 50 * time.Millisecond
	ElectionTimeout   = 750 * time.Millisecond
)

// Secret is the ClusterSecret of every member New starts.
const Secret = "coordtest-cluster-secret"

// Cluster is an in-process cluster. Its methods are safe for concurrent use.
type Cluster struct {
	tb    testing.TB // nil for a cluster from Start
	dir   string     // the members' directories; removed by Close for Start's
	mu    sync.Mutex
	cfgs  []coord.Config
	nodes []*coord.Node
	nw    *network
	fss   []*vfs.MemFS // by member, with WithPowerLoss
	disks []*disk      // by member, with WithDiskFaults
	fts   []*filtered  // by member, with WithPartitions
}

// New starts an n-member cluster with the test timings above, waits until
// every member is Ready, and registers its Close with tb.Cleanup. Its
// directories are tb's; the methods of the Cluster fail the test (tb) on
// error.
func New(tb testing.TB, n int, opts ...Option) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb, dir: tb.TempDir()}
	if err := c.start(n, opts); err != nil {
		tb.Fatalf("coordtest: %v", err)
	}
	tb.Cleanup(c.Close)
	c.WaitReady()
	return c
}

// Start starts an n-member cluster for a program with no testing.TB (an
// example, a benchmark): with coord's default timings and settings, as an
// application embeds members, on free loopback ports, with its data in a
// temporary directory that Close removes. It blocks until every member is
// Ready or ctx ends, and returns the error that stopped it (the cluster is
// then closed). The Cluster's methods that would fail a test panic instead.
func Start(ctx context.Context, n int, opts ...Option) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "coordtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	if err := c.start(n, opts); err != nil {
		c.Close()
		return nil, err
	}
	for i := range c.Size() {
		if err := c.Node(i).Ready(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("coordtest: member %d not ready: %w", i, err)
		}
	}
	return c, nil
}

// start opens the members, on new ports if a port chosen free was taken by
// another process before its member bound it.
func (c *Cluster) start(n int, opts []Option) error {
	var o options
	for _, f := range opts {
		f(&o)
	}
	for attempt := 1; ; attempt++ {
		err := c.open(n, o, filepath.Join(c.dir, fmt.Sprintf("try%d", attempt)))
		if err == nil {
			return nil
		}
		c.stopAll()
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 3 {
			return err
		}
	}
}

// helper marks the caller as a test helper, for a cluster from New.
func (c *Cluster) helper() {
	if c.tb != nil {
		c.tb.Helper()
	}
}

// fatalf fails the test of a cluster from New, and panics for one from
// Start.
func (c *Cluster) fatalf(format string, args ...any) {
	if c.tb != nil {
		c.tb.Helper()
		c.tb.Fatalf(format, args...)
	}
	panic(fmt.Sprintf(format, args...))
}

// pickAddrs chooses the members' addresses; a test replaces it.
var pickAddrs = freeport.Addrs

// open fills in n members' configs on fresh addresses and directories and
// opens them all at once. On error, the members that did open are in
// c.nodes for Close.
func (c *Cluster) open(n int, o options, dir string) error {
	addrs, err := pickAddrs(n)
	if err != nil {
		return err
	}
	initial := map[string]string{}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("m%d", i)
		initial[names[i]] = addrs[i]
	}
	if o.partitionable {
		c.nw = &network{isolated: map[string]bool{}, deaf: map[string]bool{}, delay: map[string]time.Duration{}, byID: map[uint64]string{}}
		sorted := append([]string(nil), names...)
		sort.Strings(sorted)
		for i, name := range sorted {
			c.nw.byID[uint64(i+1)] = initial[name]
		}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if v := os.Getenv("COORDTEST_LOG"); v != "" {
		level := slog.LevelWarn
		if v == "debug" {
			level = slog.LevelDebug // dragonboat's own warnings are logged at Debug
		}
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	c.mu.Lock()
	c.cfgs, c.fss, c.fts = c.cfgs[:0], c.fss[:0], c.fts[:0]
	for _, name := range names {
		cfg := coord.Config{
			Name: name, DataDir: filepath.Join(dir, name), RaftAddress: initial[name],
			InitialCluster: initial, ClusterToken: "coordtest", ClusterSecret: Secret, Shards: o.shards,
			Logger: logger.With("member", name),
		}
		if c.tb != nil { // a test's timings
			cfg.HeartbeatInterval, cfg.ElectionTimeout, cfg.RequestTimeout = HeartbeatInterval, ElectionTimeout, 10*time.Second
		}
		if o.tweak != nil {
			o.tweak(&cfg)
		}
		if o.powerLoss {
			fs := vfs.NewStrictMem()
			fs.SetIgnoreSyncs(hooks.AckBeforeSync.Load())
			hooks.SetFS(&cfg, fs)
			c.fss = append(c.fss, fs)
			if o.diskFaults {
				d := &disk{}
				hooks.SetFS(&cfg, vfs.Wrap(fs, d))
				c.disks = append(c.disks, d)
			}
		}
		if c.nw != nil {
			ft := &filtered{nw: c.nw}
			hooks.WrapTransport(&cfg, func(inner config.TransportFactory) config.TransportFactory {
				ft.inner = inner
				return ft
			})
			c.fts = append(c.fts, ft)
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	c.nodes = make([]*coord.Node, n)
	c.mu.Unlock()
	nodes := make([]*coord.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			nodes[i], errs[i] = coord.Open(context.Background(), c.cfgs[i])
		}(i)
	}
	wg.Wait()
	c.mu.Lock()
	copy(c.nodes, nodes)
	c.mu.Unlock()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("open member %d: %w", i, err)
		}
	}
	return nil
}

// Size returns the number of members.
func (c *Cluster) Size() int { return len(c.cfgs) }

// Node returns member i, or nil while it is stopped.
func (c *Cluster) Node(i int) *coord.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// Nodes returns every member, nil for those stopped.
func (c *Cluster) Nodes() []*coord.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*coord.Node(nil), c.nodes...)
}

// Config returns member i's Config.
func (c *Cluster) Config(i int) coord.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfgs[i]
}

// WaitReady waits until every running member is Ready, failing the test after
// 30 seconds.
func (c *Cluster) WaitReady() {
	c.helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < c.Size(); i++ {
		if n := c.Node(i); n != nil {
			if err := n.Ready(ctx); err != nil {
				c.fatalf("coordtest: member %d not ready: %v", i, err)
			}
		}
	}
}

// Stop closes member i (a clean Close: leadership is handed over first).
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if n != nil {
		n.Close()
	}
}

// PowerLoss stops members as a power failure would (needs WithPowerLoss):
// at once, every write to their DataDirs that was not synced is lost, and
// they stop with no clean shutdown work (no session revoked, no leadership
// handed over). It returns the instant of the failure: a write acknowledged
// to a caller before it must survive. A member alone in its cluster may
// acknowledge one after it that rests on a sync that was ignored; members
// of a larger cluster fall silent first: nothing they send from then on
// reaches a peer, even once they are reopened. Restart reopens each from
// what was synced.
func (c *Cluster) PowerLoss(members ...int) time.Time {
	c.helper()
	if len(c.fss) == 0 {
		c.fatalf("coordtest: PowerLoss needs WithPowerLoss")
	}
	c.mu.Lock()
	nodes := make([]*coord.Node, len(members))
	for j, i := range members {
		nodes[j] = c.nodes[i]
		c.nodes[i] = nil
	}
	c.mu.Unlock()
	// The members fall silent first: what they do between now and their
	// stop rests on syncs that are ignored, and must not reach the others
	// (an acknowledgement counted toward a commit) as it could not in a
	// real power failure, which is instant. Their transports drop what they
	// send from now on: the network's cut alone would let a message sent
	// now wait in a socket buffer and arrive once the cut heals below.
	cut := time.Now() // before any sync is ignored
	for _, i := range members {
		c.nw.set(c.cfgs[i].RaftAddress, true)
		c.fts[i].powerOff()
		c.fss[i].SetIgnoreSyncs(true)
	}
	for _, n := range nodes {
		if n != nil {
			hooks.Crash(n)
		}
	}
	for _, i := range members {
		c.fss[i].ResetToSyncedState()
		c.fss[i].SetIgnoreSyncs(false)
		c.nw.set(c.cfgs[i].RaftAddress, false)
	}
	return cut
}

// Restart reopens a stopped member i from its DataDir.
func (c *Cluster) Restart(i int) *coord.Node {
	c.helper()
	c.mu.Lock()
	if c.nodes[i] != nil {
		c.mu.Unlock()
		c.fatalf("coordtest: member %d is running", i)
	}
	cfg := c.cfgs[i]
	c.mu.Unlock()
	n, err := coord.Open(context.Background(), cfg)
	if err != nil {
		c.fatalf("coordtest: restart member %d: %v", i, err)
	}
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
	return n
}

// Join adds a new voting member through AddMember on a running member,
// starts it with Config.Join, waits until it is Ready, and returns its index.
func (c *Cluster) Join() int {
	c.helper()
	return c.join(false)
}

// JoinObserver adds a new observer (a non-voting member) through AddMember
// with coord.AsObserver, starts it with Config.Join and Config.Observer,
// waits until it is Ready, and returns its index.
func (c *Cluster) JoinObserver() int {
	c.helper()
	return c.join(true)
}

func (c *Cluster) join(observer bool) int {
	c.helper()
	var via *coord.Node
	for i := 0; i < c.Size() && via == nil; i++ {
		via = c.Node(i)
	}
	c.mu.Lock()
	cfg := c.cfgs[0]
	i := len(c.cfgs)
	cfg.Name = fmt.Sprintf("m%d", i)
	cfg.DataDir = filepath.Join(filepath.Dir(cfg.DataDir), cfg.Name)
	addr, err := freeport.Addr()
	if err != nil {
		c.mu.Unlock()
		c.fatalf("coordtest: %v", err)
	}
	cfg.RaftAddress = addr
	cfg.Join = true
	cfg.Observer = observer
	cfg.InitialCluster = nil
	cfg.Logger = c.cfgs[0].Logger.With("member", cfg.Name)
	c.mu.Unlock()
	if c.nw != nil {
		c.fatalf("coordtest: Join with WithPartitions is not supported")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var opts []coord.MemberOption
	if observer {
		opts = append(opts, coord.AsObserver())
	}
	if _, err := via.AddMember(ctx, cfg.Name, cfg.RaftAddress, opts...); err != nil {
		c.fatalf("coordtest: AddMember: %v", err)
	}
	n, err := coord.Open(ctx, cfg)
	if err != nil {
		c.fatalf("coordtest: open joining member: %v", err)
	}
	c.mu.Lock()
	c.cfgs = append(c.cfgs, cfg)
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	if err := n.Ready(ctx); err != nil {
		c.fatalf("coordtest: joined member not ready: %v", err)
	}
	return i
}

// Isolate cuts member i off from every other member (needs WithPartitions).
func (c *Cluster) Isolate(i int) {
	c.helper()
	if c.nw == nil {
		c.fatalf("coordtest: Isolate needs WithPartitions")
	}
	c.nw.set(c.Config(i).RaftAddress, true)
}

// Deafen drops every message member i receives, while what it sends is
// delivered (needs WithPartitions): its writes reach the leader and commit,
// but it learns of nothing. Heal undoes it.
func (c *Cluster) Deafen(i int) {
	c.helper()
	if c.nw == nil {
		c.fatalf("coordtest: Deafen needs WithPartitions")
	}
	c.nw.setDeaf(c.Config(i).RaftAddress)
}

// Heal reconnects member i (undoes Isolate and Deafen).
func (c *Cluster) Heal(i int) {
	c.helper()
	if c.nw == nil {
		c.fatalf("coordtest: Heal needs WithPartitions")
	}
	c.nw.set(c.Config(i).RaftAddress, false)
}

// Slow delays every message member i receives by d (0 restores it); needs
// WithPartitions.
func (c *Cluster) Slow(i int, d time.Duration) {
	c.helper()
	if c.nw == nil {
		c.fatalf("coordtest: Slow needs WithPartitions")
	}
	c.nw.setDelay(c.Config(i).RaftAddress, d)
}

// Diverge sets key's value on member i's copy of the store alone, outside
// Raft, and reports whether key existed there: a replica whose state
// diverged, as a flipped bit in memory would leave it, for tests of the
// integrity check (coord.Node.CheckHash, the CORRUPT alarm) and of what
// watches the alarms. Member i must be running. The copy stays diverged
// until Diverge puts the value back or the member recovers a snapshot.
func (c *Cluster) Diverge(i int, key string, value []byte) bool {
	c.helper()
	n := c.Node(i)
	if n == nil {
		c.fatalf("coordtest: Diverge: member %d is not running", i)
		return false
	}
	return hooks.Tamper(n, key, value)
}

// Leader returns the index of the member that leads shard, as agreed by a
// majority of the running members, or -1.
func (c *Cluster) Leader(shard int) int {
	votes := map[string]int{}
	running := 0
	for i := 0; i < c.Size(); i++ {
		n := c.Node(i)
		if n == nil {
			continue
		}
		running++
		st, err := n.Status(context.Background())
		if err != nil || shard >= len(st.Shards) || st.Shards[shard].Leader == 0 {
			continue
		}
		votes[fmt.Sprint(st.Shards[shard].Leader)]++
	}
	for id, v := range votes {
		if v*2 > c.Size() {
			for i := 0; i < c.Size(); i++ {
				if n := c.Node(i); n != nil {
					st, _ := n.Status(context.Background())
					if st != nil && fmt.Sprint(st.ReplicaID) == id {
						return i
					}
				}
			}
		}
	}
	return -1
}

// WaitLeader polls until shard has a leader among the running members and
// returns its index, failing the test after 30 seconds.
func (c *Cluster) WaitLeader(shard int) int {
	c.helper()
	var l int
	Eventually(c.tb, 30*time.Second, func() bool {
		l = c.Leader(shard)
		return l >= 0
	}, "no leader for shard %d", shard)
	return l
}

// Close stops every running member. Safe to call more than once.
func (c *Cluster) Close() {
	c.stopAll()
	if c.tb == nil {
		os.RemoveAll(c.dir)
	}
}

// stopAll stops every running member, concurrently.
func (c *Cluster) stopAll() {
	var wg sync.WaitGroup
	for i := 0; i < c.Size(); i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c.Stop(i)
		}(i)
	}
	wg.Wait()
}

// Eventually polls cond every 10ms until it holds, failing the test with the
// message if it does not within d. It is the module's one polling helper
// (internal/proctest.Eventually) for a condition.
func Eventually(tb testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	tb.Helper()
	proctest.Eventually(tb, d, 10*time.Millisecond, "coordtest: "+fmt.Sprintf(format, args...), proctest.Holds(cond))
}

// Context returns a context that ends after d or when the test ends.
func Context(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// Session opens a session with the given TTL on n, failing the test on
// error, and closes it when the test ends.
func Session(tb testing.TB, n *coord.Node, ttl time.Duration) *coord.Session {
	tb.Helper()
	s, err := n.NewSession(Context(tb, 30*time.Second), coord.WithTTL(ttl))
	if err != nil {
		tb.Fatalf("coordtest: session: %v", err)
	}
	tb.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// Count returns the number of keys under prefix, read linearizably on n,
// failing the test on error.
func Count(tb testing.TB, n *coord.Node, prefix string) int64 {
	tb.Helper()
	g, err := n.Get(Context(tb, 30*time.Second), prefix, coord.WithPrefix(), coord.WithCountOnly())
	if err != nil {
		tb.Fatalf("coordtest: count %s: %v", prefix, err)
	}
	return g.Count
}

// disk is the error injector of a member's filesystem (WithDiskFaults).
type disk struct{ fault atomic.Pointer[diskFault] }

type diskFault struct {
	op  vfs.Op
	err error
}

func (d *disk) MaybeError(op vfs.Op) error {
	if f := d.fault.Load(); f != nil && f.op == op {
		return f.err
	}
	return nil
}

// DiskOp names the operations FailDisk can make fail.
type DiskOp = vfs.Op

// The operations FailDisk can make fail: every write (and file creation,
// rename, removal), or every sync.
const (
	DiskWrite DiskOp = vfs.OpWrite
	DiskSync  DiskOp = vfs.OpSync
)

// FailDisk makes every later op of member i's filesystem fail with err
// (syscall.EIO, syscall.ENOSPC), as a failing disk would: the data of a
// write that fails is not written, and what a failed sync was to make
// durable may be lost (ReopenMendedDisk drops it). Needs WithDiskFaults.
func (c *Cluster) FailDisk(i int, op DiskOp, err error) {
	c.helper()
	if len(c.disks) == 0 {
		c.fatalf("coordtest: FailDisk needs WithDiskFaults")
	}
	c.disks[i].fault.Store(&diskFault{op, err})
}

// ReopenMendedDisk reopens member i, which stopped itself on a disk
// failure (Node.Err), as its process would be restarted once its disk is
// mended: from what its filesystem had synced, copied to a new disk that
// does not fail (the stopped member's storage is left to the goroutines
// that still hold it). It returns the new Node, or Open's error.
func (c *Cluster) ReopenMendedDisk(i int) (*coord.Node, error) {
	c.helper()
	if len(c.disks) == 0 {
		c.fatalf("coordtest: ReopenMendedDisk needs WithDiskFaults")
	}
	c.mu.Lock()
	old, cfg := c.nodes[i], c.cfgs[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if old != nil {
		old.Close()
	}
	src := c.fss[i]
	src.ResetToSyncedState()
	fs := vfs.NewStrictMem()
	if _, err := vfs.Clone(src, fs, cfg.DataDir, cfg.DataDir); err != nil {
		c.fatalf("coordtest: copying member %d's disk: %v", i, err)
	}
	d := &disk{}
	hooks.SetFS(&cfg, vfs.Wrap(fs, d))
	c.mu.Lock()
	c.fss[i], c.disks[i], c.cfgs[i] = fs, d, cfg
	c.mu.Unlock()
	n, err := coord.Open(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
	return n, nil
}
