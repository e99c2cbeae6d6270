package member

import (
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord/internal/admit"
	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/members"
	"github.com/coordkit/coordkit/coord/internal/raftnode"
)

// Settings is coord.Config as the parts take it: the same fields, with the
// same meaning and defaults (coord.Config documents them), TLS as the
// files' names, and the test hooks coord/internal/hooks sets.
type Settings struct {
	Name, DataDir, RaftAddress string
	InitialCluster             map[string]string
	ClusterToken               string
	Join, Observer             bool
	JoinSeeds                  []string
	DNSResolver                *net.Resolver
	AdminAddress               string
	ObserverGracePeriod        time.Duration
	TLS                        *raftnode.TLSFiles
	ClusterSecret              string
	InsecurePeers              bool
	Shards                     int

	RequestTimeout, HeartbeatInterval, ElectionTimeout     time.Duration
	MaxKeyBytes, MaxValueBytes, MaxTxnOps, MaxRequestBytes int
	HistoryRetention                                       int64
	SnapshotEntries, CompactionOverhead                    uint64
	DiskReserve                                            int64
	MaxStoreBytes                                          int64
	HashCheckInterval                                      time.Duration
	Logger                                                 *slog.Logger

	// Test hooks (coord/internal/hooks): nil in production.
	WrapTransport func(config.TransportFactory) config.TransportFactory
	FS            vfs.FS
	DiskFree      func() (uint64, error)
}

// The defaults coord.Config documents.
const (
	DefaultName              = "default"
	DefaultRaftAddress       = "127.0.0.1:2380"
	DefaultClusterToken      = "coordkit-cluster"
	DefaultShards            = 1
	MaxShards                = 1024
	DefaultRequestTimeout    = 5 * time.Second
	DefaultHeartbeat         = 100 * time.Millisecond
	DefaultElection          = time.Second
	DefaultMaxKeyBytes       = 4096
	DefaultMaxValueBytes     = 1 << 20
	DefaultMaxTxnOps         = 128
	DefaultMaxRequestBytes   = 3 << 19 // 1.5 MiB
	DefaultHistoryRetention  = 10000
	DefaultSnapshotEntries   = 100000
	DefaultCompactionOverhad = 5000
	DefaultObserverGrace     = time.Minute
	DefaultDiskReserve       = 64 << 20
	DefaultMaxStoreBytes     = 1 << 30
	DefaultHashCheck         = 30 * time.Minute
)

// WithDefaults returns a copy of c with every zero field filled, and the
// map and slice it holds copied.
func (c Settings) WithDefaults() Settings {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.Name, DefaultName)
	def(&c.RaftAddress, DefaultRaftAddress)
	def(&c.ClusterToken, DefaultClusterToken)
	if c.InitialCluster == nil {
		c.InitialCluster = map[string]string{c.Name: c.RaftAddress}
	} else {
		ic := make(map[string]string, len(c.InitialCluster))
		for k, v := range c.InitialCluster {
			ic[k] = v
		}
		c.InitialCluster = ic
	}
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{&c.RequestTimeout, DefaultRequestTimeout}, {&c.HeartbeatInterval, DefaultHeartbeat},
		{&c.ElectionTimeout, DefaultElection}, {&c.ObserverGracePeriod, DefaultObserverGrace},
		{&c.HashCheckInterval, DefaultHashCheck}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	for _, d := range []struct {
		p *int
		v int
	}{{&c.MaxKeyBytes, DefaultMaxKeyBytes}, {&c.MaxValueBytes, DefaultMaxValueBytes},
		{&c.MaxTxnOps, DefaultMaxTxnOps}, {&c.MaxRequestBytes, DefaultMaxRequestBytes}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	if c.HistoryRetention == 0 {
		c.HistoryRetention = DefaultHistoryRetention
	}
	if c.SnapshotEntries == 0 {
		c.SnapshotEntries = DefaultSnapshotEntries
	}
	if c.CompactionOverhead == 0 {
		c.CompactionOverhead = DefaultCompactionOverhad
	}
	if c.DiskReserve == 0 {
		c.DiskReserve = DefaultDiskReserve
	}
	if c.MaxStoreBytes == 0 {
		c.MaxStoreBytes = DefaultMaxStoreBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.JoinSeeds = append([]string(nil), c.JoinSeeds...)
	return c
}

// Validate checks Settings that went through WithDefaults; errors wrap
// ErrInvalidConfig and name the field. Shards is checked against the
// persisted count separately (boot.Resolve).
func (c *Settings) Validate() error {
	if c.DataDir == "" {
		return errdefs.Config("DataDir", "required")
	}
	if err := members.ValidAddress(c.RaftAddress); err != nil {
		return errdefs.Config("RaftAddress", "%v", err)
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	if err := c.validateSecurity(); err != nil {
		return err
	}
	if c.Shards < 0 || c.Shards > MaxShards {
		return errdefs.Config("Shards", "%d is outside 1..%d", c.Shards, MaxShards)
	}
	if c.RequestTimeout < 0 {
		return errdefs.Config("RequestTimeout", "negative")
	}
	if c.HeartbeatInterval < time.Millisecond {
		return errdefs.Config("HeartbeatInterval", "%v is below 1ms", c.HeartbeatInterval)
	}
	if c.ElectionTimeout < 5*c.HeartbeatInterval {
		return errdefs.Config("ElectionTimeout", "%v is below 5 heartbeats (%v)", c.ElectionTimeout, 5*c.HeartbeatInterval)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"MaxKeyBytes", c.MaxKeyBytes}, {"MaxValueBytes", c.MaxValueBytes}, {"MaxTxnOps", c.MaxTxnOps}, {"MaxRequestBytes", c.MaxRequestBytes}} {
		if f.v < 0 {
			return errdefs.Config(f.name, "negative")
		}
	}
	if c.MaxKeyBytes+c.MaxValueBytes > c.MaxRequestBytes {
		return errdefs.Config("MaxRequestBytes", "%d cannot hold a key of MaxKeyBytes and a value of MaxValueBytes", c.MaxRequestBytes)
	}
	return nil
}

// validateCluster checks who the members are: InitialCluster, and how
// this one joins.
func (c *Settings) validateCluster() error {
	addr, ok := c.InitialCluster[c.Name]
	if !ok {
		return errdefs.Config("InitialCluster", "does not name this member %q", c.Name)
	}
	if addr != c.RaftAddress {
		return errdefs.Config("InitialCluster", "gives member %q address %q, but RaftAddress is %q", c.Name, addr, c.RaftAddress)
	}
	seen := map[string]string{}
	for name, a := range c.InitialCluster {
		if name == "" {
			return errdefs.Config("InitialCluster", "empty member name")
		}
		if err := members.ValidAddress(a); err != nil {
			return errdefs.Config("InitialCluster", "member %q: %v", name, err)
		}
		if other, dup := seen[a]; dup {
			return errdefs.Config("InitialCluster", "members %q and %q share address %q", other, name, a)
		}
		seen[a] = name
	}
	if c.Observer && !c.Join {
		return errdefs.Config("Observer", "needs Join: a cluster is founded by voters")
	}
	if len(c.JoinSeeds) > 0 && !(c.Join && c.Observer) {
		return errdefs.Config("JoinSeeds", "needs Join and Observer: voters are added by an operator with AddMember")
	}
	for _, a := range c.JoinSeeds {
		if name, ok := strings.CutPrefix(a, admit.SRVPrefix); ok {
			if name == "" || strings.ContainsAny(name, " :/") {
				return errdefs.Config("JoinSeeds", "%q: want srv: and a DNS SRV record name", a)
			}
			continue
		}
		if err := members.ValidAddress(a); err != nil {
			return errdefs.Config("JoinSeeds", "%v", err)
		}
	}
	return nil
}

// validateSecurity checks TLS, and that nothing plaintext listens beyond
// loopback unless InsecurePeers says so.
func (c *Settings) validateSecurity() error {
	if c.TLS != nil {
		if err := c.TLS.Check(); err != nil {
			return err
		}
	} else if !c.InsecurePeers && !members.Loopback(c.RaftAddress) {
		return errdefs.Config("RaftAddress", "%q is not loopback and TLS is not set: plaintext peer traffic can be read and altered on the way; set TLS, or InsecurePeers on a network only members reach", c.RaftAddress)
	}
	if c.AdminAddress != "" {
		if err := members.ValidAddress(c.AdminAddress); err != nil {
			return errdefs.Config("AdminAddress", "%v", err)
		}
		if c.TLS == nil && !c.InsecurePeers && !members.Loopback(c.AdminAddress) {
			return errdefs.Config("AdminAddress", "%q is not loopback and TLS is not set: plaintext admission traffic can be read and altered on the way; set TLS, or InsecurePeers", c.AdminAddress)
		}
	}
	return nil
}

// DataFS is the filesystem that holds DataDir: FS, or the operating
// system's.
func (c *Settings) DataFS() vfs.FS {
	if c.FS != nil {
		return c.FS
	}
	return vfs.Default
}

// MinLeaseTTL is the shortest TTL the cluster can keep alive through an
// election: a keep-alive must be able to commit after a leader is lost.
func (c *Settings) MinLeaseTTL() time.Duration { return 2 * c.ElectionTimeout }
