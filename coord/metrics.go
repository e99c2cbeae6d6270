package coord

import "github.com/coordkit/coordkit/coord/internal/metric"

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
	// StoreBytes is the shard's store as Config.MaxStoreBytes counts it;
	// NoSpace reports its NOSPACE alarm, Corrupt its CORRUPT alarm.
	StoreBytes int64
	NoSpace    bool
	Corrupt    bool
}

// Histogram is a cumulative histogram: Counts[i] observations were at most
// Bounds[i] seconds; Count is all of them, Sum their total.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// histogram is the public snapshot of h.
func histogram(h *metric.Histogram) Histogram {
	counts, n, sum := h.Snapshot()
	return Histogram{Bounds: append([]float64(nil), metric.Bounds...), Counts: counts, Count: n, Sum: sum}
}

// Metrics returns a snapshot of this member's metrics. It reads only local
// state and never blocks on the network; it is cheap enough to call on
// every scrape. Safe for concurrent use; after Close it reports what was
// last known.
func (n *Node) Metrics() Metrics {
	hs := n.m.Host.Stats()
	m := Metrics{Member: n.m.Cfg.Name, Proposals: hs.Proposals, ProposalFailures: hs.Failures, ProposalRetries: hs.Retries,
		ProposalSeconds: histogram(hs.Propose), ApplySeconds: histogram(hs.Apply), ReaperSeconds: histogram(&n.m.ReapTimes)}
	m.Sessions, m.DiskLow = n.m.Sessions.Len(), n.m.Host.DiskLow()
	for _, s := range n.m.Shards {
		sm := ShardMetrics{Shard: s.Index, LeaderChanges: s.LeaderChanges()}
		if v := s.View(); v != nil {
			sm.Revision, sm.CompactRevision, sm.AppliedIndex = Revision(v.Revision()), Revision(v.CompactRevision()), v.Applied()
			sm.Leases = len(v.Leases())
			sm.StoreBytes, sm.NoSpace, sm.Corrupt = v.Bytes(), v.NoSpace(), len(v.Corrupt()) > 0
		}
		if l, _, ok := s.Leader(); ok && !n.m.Host.Closed() {
			sm.HasLeader, sm.IsLeader = true, l == n.m.Host.ReplicaID()
		}
		sm.Watchers = s.Hub.Len()
		m.Shards = append(m.Shards, sm)
	}
	st := n.m.Host.TransportStats()
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
