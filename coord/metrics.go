package coord

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4/raftio"
	dbsm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Metrics is a snapshot of a member's counters and gauges, for an exporter
// such as coord/metrics (Prometheus) to publish. Counters count from Open.
type Metrics struct {
	Member string
	// Proposals counts writes this member proposed to Raft (that entered a
	// shard's log, or may have), and ProposalFailures those that ended in an
	// error (timeout, unknown outcome, closed).
	Proposals, ProposalFailures uint64
	// ProposalRetries counts attempts of a write that timed out and were
	// proposed again under the same request ID (applied at most once).
	// Steady growth means proposals are being lost on the way to the
	// leader: an overloaded leader, or leader changes.
	ProposalRetries uint64
	// ProposalSeconds is the time from proposing a write to its result,
	// including forwarding to the leader, commit and apply.
	ProposalSeconds Histogram
	// ApplySeconds is the time the state machine took to apply one batch of
	// committed entries on this member.
	ApplySeconds Histogram
	// ReaperSeconds is the time of each pass of the observer reaper (see
	// ObserverGracePeriod), on the member leading shard 0 when it ran:
	// reading the membership and removing the observers silent for too
	// long.
	ReaperSeconds Histogram
	// Sessions is the number of live Sessions created through this member.
	Sessions int
	// DiskLow: this member's disk has less free space than
	// Config.DiskReserve, and it takes no writes (see Status.DiskLow).
	DiskLow bool
	Shards  []ShardMetrics
	// Transport is this member's peer traffic.
	Transport TransportMetrics
}

// TransportMetrics describes the Raft traffic between this member and its
// peers, counted since this member's transport started.
type TransportMetrics struct {
	// RefusedConnections counts inbound connections to RaftAddress closed
	// before they proved they belong to the cluster (a failed or timed-out
	// handshake, or too many handshakes under way); BadHandshakes those of
	// them that sent a wrong proof of the ClusterSecret, or something that
	// is no coordkit peer's greeting. Either growing means something other
	// than a member is talking to the Raft port.
	RefusedConnections, BadHandshakes uint64
	// BadFrames counts connections from proven peers closed for a
	// malformed, oversized or undecodable frame.
	BadFrames uint64
	// SnapshotChunksReceived counts snapshot chunks received, from any
	// peer.
	SnapshotChunksReceived uint64
	// Peers has one entry per peer address this member exchanged messages
	// with, sorted by address. A peer without a connection for 10 minutes
	// is dropped when a new one appears (its counters start again from
	// zero if it comes back), so that a fleet whose instances come and go
	// does not grow this list forever.
	Peers []PeerMetrics
}

// PeerMetrics counts the traffic with one peer.
type PeerMetrics struct {
	Address string
	// SentBytes, SentMessages (Raft messages), SentBatches (frames, each
	// carrying what was queued for the peer when it was encoded),
	// SentSnapshotChunks, and Writes (system calls, each carrying every
	// frame queued at the time).
	SentBytes, SentMessages, SentBatches, SentSnapshotChunks, Writes uint64
	// Received from this peer (messages; chunks are counted in
	// TransportMetrics).
	ReceivedBytes, ReceivedMessages, ReceivedBatches uint64
	// DroppedMessages were not sent: the peer's queue stayed full, the
	// connection failed, or a message was too large. Raft sends again.
	DroppedMessages uint64
	// ThinnedHeartbeats were left out because the peer is an observer and
	// the leader had nothing new for it: at most one heartbeat per half
	// election timeout goes to an idle observer.
	ThinnedHeartbeats uint64
	// QueueBytes is what waits to be sent to the peer now.
	QueueBytes int64
}

// ShardMetrics describes one shard's replica on this member.
type ShardMetrics struct {
	Shard           int
	Revision        Revision
	CompactRevision Revision
	AppliedIndex    uint64
	HasLeader       bool // a leader is known to this member
	IsLeader        bool // this member leads the shard
	// LeaderChanges counts the times this member saw the shard's leader
	// change to another member.
	LeaderChanges uint64
	Watchers      int // watches open on this member
	Leases        int // leases in the shard
}

// Histogram is a cumulative histogram: Counts[i] observations were at most
// Bounds[i] seconds; Count is all of them, Sum their total.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// latencyBounds spans a local fsync (100µs) to a slow election (5s).
var latencyBounds = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

type histogram struct {
	mu     sync.Mutex
	counts [16]uint64 // per bucket; the last is +Inf
	n      uint64
	sum    float64
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(latencyBounds) && s > latencyBounds[i] {
		i++
	}
	h.mu.Lock()
	h.counts[i]++
	h.n++
	h.sum += s
	h.mu.Unlock()
}

func (h *histogram) snapshot() Histogram {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := Histogram{Bounds: append([]float64(nil), latencyBounds...), Counts: make([]uint64, len(latencyBounds)), Count: h.n, Sum: h.sum}
	var c uint64
	for i := range latencyBounds {
		c += h.counts[i]
		out.Counts[i] = c
	}
	return out
}

// metrics holds a Node's instruments.
type metrics struct {
	proposals, failures, retries atomic.Uint64
	propose, apply, reap         histogram
}

// shardStats is per-shard state the metrics read.
type shardStats struct {
	leaderChanges atomic.Uint64
	leader        atomic.Uint64 // last leader ID seen, 0 for none
}

// leaderListener counts leader changes; dragonboat calls it on its own
// goroutines, so it only updates atomics. dragonboat keeps the first
// NodeHost of a process reachable after Close (the transport's gauges in
// github.com/VictoriaMetrics/metrics' global set hold it), and with it this
// listener: so it reaches the Node through a pointer that Close clears, or
// a closed Node, store and all, would never be collected.
type leaderListener struct{ n *atomic.Pointer[Node] }

func (l leaderListener) LeaderUpdated(info raftio.LeaderInfo) {
	n := l.n.Load()
	if n == nil || info.ShardID == 0 || info.ShardID > uint64(len(n.stats)) {
		return
	}
	st := &n.stats[info.ShardID-1]
	if prev := st.leader.Swap(info.LeaderID); info.LeaderID != 0 && prev != info.LeaderID {
		st.leaderChanges.Add(1)
		if info.ShardID <= uint64(len(n.shards)) {
			n.shards[info.ShardID-1].leaderChanged()
		}
	}
	if info.LeaderID == n.replicaID && info.ShardID <= uint64(len(n.shards)) {
		n.shards[info.ShardID-1].keeper.leading()
	}
}

// roleListener tells the Node when a shard's membership changed on this
// member, so that it refreshes what the peer transport knows of roles
// (watchRoles). dragonboat calls it on its own goroutine and waits for it:
// it only signals. It reaches the Node as leaderListener does.
type roleListener struct{ n *atomic.Pointer[Node] }

func (l roleListener) changed() {
	if n := l.n.Load(); n != nil {
		select {
		case n.rolesChanged <- struct{}{}:
		default:
		}
	}
}

func (l roleListener) MembershipChanged(raftio.NodeInfo)           { l.changed() }
func (l roleListener) NodeReady(raftio.NodeInfo)                   { l.changed() }
func (l roleListener) NodeUnloaded(raftio.NodeInfo)                { l.changed() }
func (l roleListener) NodeDeleted(raftio.NodeInfo)                 {}
func (l roleListener) NodeHostShuttingDown()                       {}
func (l roleListener) ConnectionEstablished(raftio.ConnectionInfo) {}
func (l roleListener) ConnectionFailed(raftio.ConnectionInfo)      {}
func (l roleListener) SendSnapshotStarted(raftio.SnapshotInfo)     {}
func (l roleListener) SendSnapshotCompleted(raftio.SnapshotInfo)   {}
func (l roleListener) SendSnapshotAborted(raftio.SnapshotInfo)     {}
func (l roleListener) SnapshotReceived(raftio.SnapshotInfo)        {}
func (l roleListener) SnapshotRecovered(raftio.SnapshotInfo)       { l.changed() }
func (l roleListener) SnapshotCreated(raftio.SnapshotInfo)         {}
func (l roleListener) SnapshotCompacted(raftio.SnapshotInfo)       {}
func (l roleListener) LogCompacted(raftio.EntryInfo)               {}
func (l roleListener) LogDBCompacted(raftio.EntryInfo)             {}

// timedMachine measures how long each batch takes to apply; it is what
// dragonboat drives, the pure state machine sits inside.
type timedMachine struct {
	*sm.Machine
	h *histogram
}

func (t timedMachine) Update(entries []dbsm.Entry) ([]dbsm.Entry, error) {
	start := time.Now()
	out, err := t.Machine.Update(entries)
	t.h.observe(time.Since(start))
	return out, err
}

// Metrics returns a snapshot of this member's metrics. It reads only local
// state and never blocks on the network; it is cheap enough to call on
// every scrape. Safe for concurrent use; after Close it reports what was
// last known.
func (n *Node) Metrics() Metrics {
	m := Metrics{Member: n.cfg.Name, Proposals: n.metrics.proposals.Load(), ProposalFailures: n.metrics.failures.Load(),
		ProposalRetries: n.metrics.retries.Load(),
		ProposalSeconds: n.metrics.propose.snapshot(), ApplySeconds: n.metrics.apply.snapshot(),
		ReaperSeconds: n.metrics.reap.snapshot()}
	n.sessMu.Lock()
	m.Sessions = len(n.sessions)
	m.DiskLow = n.diskLow.Load()
	n.sessMu.Unlock()
	for i, s := range n.shards {
		sm := ShardMetrics{Shard: s.idx, LeaderChanges: n.stats[i].leaderChanges.Load()}
		if mc := s.machine.Load(); mc != nil {
			v := mc.View()
			sm.Revision, sm.CompactRevision, sm.AppliedIndex = Revision(v.Revision()), Revision(v.CompactRevision()), v.Applied()
			sm.Leases = len(v.Leases())
		}
		if !n.closed.Load() {
			if l, _, ok, err := n.nh.GetLeaderID(s.id); err == nil && ok && l != 0 {
				sm.HasLeader, sm.IsLeader = true, l == n.replicaID
			}
		}
		s.hub.mu.Lock()
		sm.Watchers = s.hub.size()
		s.hub.mu.Unlock()
		m.Shards = append(m.Shards, sm)
	}
	st := n.peers.Stats()
	m.Transport = TransportMetrics{RefusedConnections: st.RefusedConnections, BadHandshakes: st.BadHandshakes,
		BadFrames: st.BadFrames, SnapshotChunksReceived: st.ReceivedChunks}
	for _, p := range st.Peers {
		m.Transport.Peers = append(m.Transport.Peers, PeerMetrics{Address: p.Address,
			SentBytes: p.SentBytes, SentMessages: p.SentMessages, SentBatches: p.SentBatches,
			SentSnapshotChunks: p.SentChunks, Writes: p.Writes,
			ReceivedBytes: p.ReceivedBytes, ReceivedMessages: p.ReceivedMessages, ReceivedBatches: p.ReceivedBatches,
			DroppedMessages: p.Dropped, ThinnedHeartbeats: p.ThinnedHeartbeats, QueueBytes: p.QueueBytes})
	}
	return m
}
