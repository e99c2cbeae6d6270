package coord

import (
	"log/slog"
	"net"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord/internal/member"
	"github.com/coordkit/coordkit/coord/internal/raftnode"
)

// Config configures a Node. The zero value of every field but DataDir has a
// working default: a Config holding only DataDir opens a single-member
// cluster on loopback. Open copies the Config; changing it afterwards has no
// effect.
//
// The fields mirror etcd's member flags where there is one.
type Config struct {
	// Name is this member's name, unique in the cluster (etcd --name).
	// Default "default".
	Name string
	// DataDir holds the Raft log, snapshots and this member's identity
	// (etcd --data-dir). Required. Reopening the same DataDir recovers
	// everything; InitialCluster is then not needed and is ignored.
	DataDir string
	// RaftAddress is the host:port this member listens on for peer traffic
	// and that peers dial (etcd --listen-peer-urls and
	// --initial-advertise-peer-urls). Default "127.0.0.1:2380".
	RaftAddress string
	// InitialCluster maps every founding member's name to its RaftAddress
	// (etcd --initial-cluster). It must name this member with its
	// RaftAddress. Default: this member alone. Every founding member must be
	// given the same map; members' Raft IDs are derived from it.
	InitialCluster map[string]string
	// ClusterToken keeps clusters apart: members with different tokens never
	// exchange messages (etcd --initial-cluster-token). Default
	// "coordkit-cluster".
	ClusterToken string
	// Join starts a member that was added to a running cluster with
	// AddMember, instead of founding one (etcd --initial-cluster-state
	// existing). Name, RaftAddress and ClusterToken must be those given to
	// AddMember, and Shards the cluster's count. Only used with a new
	// DataDir; a restart ignores it. InitialCluster is then optional: it
	// only names the other members for Members until the joiner has caught up.
	Join bool
	// Observer, with Join, starts this member as a non-voting member (added
	// with AddMember and AsObserver, or admitted through JoinSeeds): it
	// reads and watches from its own replica, forwards writes to the
	// leader, and never counts toward quorum. A member promoted with
	// PromoteMember restarts as a voter whatever this says.
	Observer bool
	// JoinSeeds lets an observer join without an operator: with Join and
	// Observer, Open asks these members in turn (their AdminAddress,
	// host:port) to admit this member, and the one that answers adds it
	// under a fresh Raft ID. No AddMember is needed, and InitialCluster is
	// not used. On a restart Open asks again: if the observer was removed
	// meanwhile (see ObserverGracePeriod), its Raft state in DataDir is
	// discarded and it joins afresh (an observer holds only a replica of
	// the voters' data). If no seed answers a restart, the member restarts
	// as it was. A new member whose seeds do not admit it (none answers,
	// no leader yet, busy with others: each member admits one observer at
	// a time) asks again with backoff until ctx ends; a refusal ends Open
	// at once. A newcomer that takes the name or the address of another
	// observer replaces it when that observer is unreachable (a rescheduled
	// instance, a reused address), and is refused with ErrMemberExists
	// while it is reachable; a voter's name or address is never taken.
	// Each request carries a proof of the ClusterSecret stamped with this
	// host's clock: a seed whose clock is more than a minute apart refuses
	// it, as it refuses a request with a wrong secret.
	//
	// A seed "srv:NAME" is a DNS SRV record name (for example
	// srv:_coordkit-admin._tcp.example.com, as etcd's --discovery-srv
	// looks up _etcd-server._tcp.DOMAIN), looked up again at every round
	// of asking: its targets, host:port, are asked in the order DNS gives
	// them (by priority, then at random by weight). With TLS, the
	// targets' names are what the seeds' certificates must name.
	JoinSeeds []string
	// DNSResolver looks up srv: JoinSeeds. Default net.DefaultResolver.
	DNSResolver *net.Resolver
	// AdminAddress is the host:port where this member answers the admission
	// requests of observers whose JoinSeeds name it. Empty: it answers none.
	// Every request must prove it holds the ClusterSecret (HTTP 401
	// otherwise). With TLS set it also requires a client certificate
	// signed by TLS.CAFile; without TLS it must be loopback unless
	// InsecurePeers is set.
	AdminAddress string
	// ObserverGracePeriod is how long an observer may stay silent (the
	// leader of shard 0 receives nothing from it: it answers heartbeats
	// several times an election timeout while it runs and reaches the
	// leader) before that leader removes it from the cluster, so that
	// observers that died or left do not accumulate. A new leader gives
	// every observer a whole grace period again. A clean Close counts as
	// leaving. Voters are never removed automatically. Default 1 minute;
	// negative: never.
	ObserverGracePeriod time.Duration
	// TLS, when set, makes peer traffic mutual TLS: this member presents
	// CertFile and accepts only peers whose certificates CAFile signed.
	// Every member of a cluster must use TLS or none. Default: plaintext,
	// authenticated by the ClusterSecret but not encrypted, and allowed
	// only on a loopback RaftAddress unless InsecurePeers is set.
	TLS *TLSConfig
	// ClusterSecret is what members prove to each other that they hold
	// before anything they send is decoded: every connection to the Raft
	// port opens with an HMAC challenge on it, and every admission request
	// (JoinSeeds) carries an HMAC of it. The cluster token is no secret.
	// Every member of a cluster must have the same one, at least 16 bytes
	// (for example 32 random bytes, hex-encoded). Default: the secret
	// stored in DataDir/cluster-secret; a member that founds a cluster
	// alone (no InitialCluster, no Join) generates it there on its first
	// start, and members added later must be given its contents. Without
	// TLS, any other member without a secret is refused by Open with
	// ErrInvalidConfig. With TLS the certificates prove membership, and a
	// secret, when set, is checked as well.
	ClusterSecret string
	// InsecurePeers allows plaintext peer traffic on a RaftAddress that is
	// not loopback. Peers must still prove they hold the ClusterSecret,
	// but the traffic is neither encrypted nor protected from tampering
	// by anyone on the path: set it only on a network that only members
	// can reach.
	InsecurePeers bool
	// Shards is the number of Raft groups keys are spread over by their first
	// path segment. It is fixed when the cluster is created; reopening with
	// another non-zero count is an error. Default 1 (see the README for the
	// measured trade-off).
	Shards int
	// RequestTimeout bounds a call whose context has no deadline. Default 5s.
	RequestTimeout time.Duration
	// HeartbeatInterval is the Raft heartbeat period (etcd
	// --heartbeat-interval). Default 100ms. Minimum 1ms.
	HeartbeatInterval time.Duration
	// ElectionTimeout is how long a follower waits without hearing from a
	// leader before it campaigns (etcd --election-timeout). Default 1s. It
	// must be at least 5 heartbeats. Lease TTLs must be at least twice it.
	ElectionTimeout time.Duration
	// MaxKeyBytes bounds key length. Default 4096.
	MaxKeyBytes int
	// MaxValueBytes bounds value length. Default 1 MiB.
	MaxValueBytes int
	// MaxTxnOps bounds the operations (and compares) in one Txn branch.
	// Default 128, as in etcd.
	MaxTxnOps int
	// MaxRequestBytes bounds one encoded request. Default 1.5 MiB, as in etcd.
	MaxRequestBytes int
	// HistoryRetention is how many revisions of history each shard keeps for
	// watches and reads at old revisions; the shard's leader compacts older
	// history automatically. Default 10000; negative turns automatic
	// compaction off (Compact still works).
	HistoryRetention int64
	// SnapshotEntries: a replica snapshots its state every this many applied
	// entries, and the Raft log before the snapshot is compacted. A snapshot
	// writes the whole state, so a small interval costs CPU under steady
	// writes; a large one keeps more log on disk and makes a restart replay
	// more of it. Default 100000, etcd's --snapshot-count.
	SnapshotEntries uint64
	// CompactionOverhead is how many entries are kept in the log behind a
	// snapshot, so that a slightly lagging follower catches up from the log
	// rather than by snapshot. Default 5000.
	CompactionOverhead uint64
	// DiskReserve is the free space, on the filesystem that holds DataDir,
	// below which this member stops growing its Raft log: it refuses
	// writes proposed through it with ErrNoSpace, takes no new entries
	// from its leader, and hands over the leadership of every shard it
	// leads; it catches up once space is freed. A disk that fills up under
	// the log anyway stops the member with ErrDiskFailure (README, "A
	// failing disk"). Checked
	// four times a second. Default 64 MiB; negative turns the check off.
	DiskReserve int64
	// MaxStoreBytes bounds each shard's store, as etcd's
	// --quota-backend-bytes bounds its backend: keys and values, the
	// history kept for watches and past reads, tombstones and leases, each
	// version counted with a fixed overhead (Status and Metrics show the
	// count). Every member holds every shard in memory, so this bounds
	// what one runaway writer can make every instance of a fleet hold.
	// Once a shard reaches it, a member asked for a write that would grow
	// the shard raises the shard's NOSPACE alarm through Raft, and from
	// then on every member refuses such writes (puts, grants) with
	// ErrNoSpace, while deletes, revokes, compaction and reads still work.
	// Free space (delete, then Compact), then DisarmAlarms. Every member
	// should be given the same value. Default 1 GiB; negative: no quota.
	MaxStoreBytes int64
	// HashCheckInterval is how often each shard's leader starts an
	// integrity check (Node.CheckHash starts one on demand): every replica
	// hashes the shard's state as of the check's log entry and reports the
	// hash through Raft; when hashes differ, the shard's CORRUPT alarm is
	// raised, naming the members whose state diverged, and every member
	// refuses the shard's writes with ErrCorruptAlarm until the alarm is
	// disarmed. A check costs each replica a pass over its store, off the
	// apply path. Default 30 minutes; negative: only on demand.
	HashCheckInterval time.Duration
	// Logger receives this member's logs and dragonboat's. dragonboat's
	// logging is process-wide: with several Nodes in one process, its lines
	// go to the Logger of the Node opened last. Its Info lines are logged at
	// Debug. Default slog.Default().
	Logger *slog.Logger

	// test hooks, set through coord/internal/hooks only.
	testTransport func(config.TransportFactory) config.TransportFactory
	testFS        vfs.FS
	testDiskFree  func() (uint64, error)
}

// TLSConfig names the PEM files of mutual TLS between members.
type TLSConfig struct {
	// CAFile holds the certificate authority that signs every member's
	// certificate; a peer whose certificate it did not sign is refused.
	CAFile string
	// CertFile and KeyFile are this member's certificate and private key.
	// The certificate must be valid for client and server authentication
	// (extended key usages clientAuth and serverAuth) and name the host of
	// this member's RaftAddress, and of its AdminAddress if set, as a
	// subject alternative name (an IP SAN for an IP address): peers check
	// it against the address they dial.
	CertFile, KeyFile string
}

// settings is c as package member takes it.
func (c *Config) settings() member.Settings {
	var tls *raftnode.TLSFiles
	if t := c.TLS; t != nil {
		tls = &raftnode.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile}
	}
	return member.Settings{Name: c.Name, DataDir: c.DataDir, RaftAddress: c.RaftAddress, InitialCluster: c.InitialCluster,
		ClusterToken: c.ClusterToken, Join: c.Join, Observer: c.Observer, JoinSeeds: c.JoinSeeds, DNSResolver: c.DNSResolver,
		AdminAddress: c.AdminAddress, ObserverGracePeriod: c.ObserverGracePeriod, TLS: tls,
		ClusterSecret: c.ClusterSecret, InsecurePeers: c.InsecurePeers, Shards: c.Shards,
		RequestTimeout: c.RequestTimeout, HeartbeatInterval: c.HeartbeatInterval, ElectionTimeout: c.ElectionTimeout,
		MaxKeyBytes: c.MaxKeyBytes, MaxValueBytes: c.MaxValueBytes, MaxTxnOps: c.MaxTxnOps, MaxRequestBytes: c.MaxRequestBytes,
		HistoryRetention: c.HistoryRetention, SnapshotEntries: c.SnapshotEntries, CompactionOverhead: c.CompactionOverhead,
		DiskReserve: c.DiskReserve, MaxStoreBytes: c.MaxStoreBytes, HashCheckInterval: c.HashCheckInterval, Logger: c.Logger, FS: c.testFS, DiskFree: c.testDiskFree, WrapTransport: c.testTransport}
}
