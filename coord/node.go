package coord

import (
	"context"
	"hash/fnv"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord/internal/hooks"
	"github.com/coordkit/coordkit/coord/internal/member"
)

func init() {
	hooks.WrapTransport = func(cfg any, wrap func(config.TransportFactory) config.TransportFactory) {
		cfg.(*Config).testTransport = wrap
	}
	hooks.SetFS = func(cfg any, fs vfs.FS) { cfg.(*Config).testFS = fs }
	hooks.SetDiskFree = func(cfg any, free func() (uint64, error)) { cfg.(*Config).testDiskFree = free }
	hooks.Crash = func(node any) { node.(*Node).m.Crash() }
	hooks.Tamper = func(node any, key string, value []byte) bool {
		n := node.(*Node)
		return n.m.Shards[n.ShardOf(key)].Machine().Tamper(key, value)
	}
	hooks.StateHashes = func(node any) (revs []int64, hashes []uint64) {
		for _, s := range node.(*Node).m.Shards {
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
	m *member.Member // the running member: see coord/internal/member
}

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
	m, err := member.Open(ctx, cfg.settings())
	if err != nil {
		return nil, err
	}
	return &Node{m: m}, nil
}

// Name returns this member's name.
func (n *Node) Name() string { return n.m.Cfg.Name }

// ID returns this member's Raft replica ID (Member.ID): unique in the
// cluster, and never reused.
func (n *Node) ID() uint64 { return n.m.Host.ReplicaID() }

// ClusterID returns the cluster's identifier, the same on every member:
// a hash of its ClusterToken (etcd's cluster ID plays this part).
func (n *Node) ClusterID() uint64 {
	h := fnv.New64a()
	h.Write([]byte(n.m.Cfg.ClusterToken))
	return h.Sum64()
}

// Shards returns the cluster's shard count.
func (n *Node) Shards() int { return len(n.m.Shards) }

// ShardOf returns the shard that holds key: keys with the same first path
// segment ("/orders/a" and "/orders/b": "orders") always share a shard.
func (n *Node) ShardOf(key string) int { return n.m.Router().ShardOf(key) }

// Ready blocks until every shard has a leader and this member has caught up
// with it (a linearizable read succeeds on every shard), or ctx ends.
func (n *Node) Ready(ctx context.Context) error {
	ctx, cancel := n.m.Host.WithTimeout(ctx)
	defer cancel()
	for _, s := range n.m.Shards {
		if _, err := s.Read(ctx, false); err != nil {
			return err
		}
	}
	return nil
}

// header describes a response of shard s at revision rev.
func (n *Node) header(s *member.Shard, rev int64) Header {
	return Header{Shard: s.Index, Revision: Revision(rev), RaftTerm: s.Term(), Member: n.m.Cfg.Name}
}

// headers is the Header and the per-shard Headers of an answer made of
// parts: the one shard's, or ShardAll and each shard's when all.
func (n *Node) headers(parts []member.Part, all bool) (Header, []Header) {
	hs := make([]Header, len(parts))
	for i, p := range parts {
		hs[i] = n.header(p.Shard, p.Rev)
	}
	if !all {
		return hs[0], nil
	}
	return Header{Shard: ShardAll, Member: n.m.Cfg.Name}, hs
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
	return n.m.Shutdown(ctx)
}

// Close is Shutdown with no bound but the configured timeouts (at most
// Config.RequestTimeout for the revokes, an ElectionTimeout for the
// handovers), for io.Closer. It is idempotent, and returns nil.
func (n *Node) Close() error {
	return n.Shutdown(context.Background())
}

// Err returns nil while this member runs, and after Close. When the member
// stopped itself, because its state cannot be trusted or its disk failed,
// it returns why, an error wrapping ErrCorrupt or ErrDiskFailure; the Node
// is then closed, and calls fail with ErrClosed wrapping the same cause. It
// does not block.
func (n *Node) Err() error { return n.m.Host.Err() }

// Done returns a channel that is closed when the member stops: by Close
// or Shutdown, or by itself (Err then says why). A program whose purpose
// is the member can exit on it, and leave a restart to its supervisor.
func (n *Node) Done() <-chan struct{} { return n.m.Host.Done() }
