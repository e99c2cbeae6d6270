// Package metrics publishes a coord.Node's metrics to Prometheus.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.NewCollector(node))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Every metric is read from Node.Metrics at scrape time (local state only,
// no network), labelled with the member's name, and per shard with the
// shard's number:
//
//	coordkit_proposals_total                 writes proposed to Raft
//	coordkit_proposal_failures_total         proposals that ended in an error
//	coordkit_proposal_duration_seconds       propose to result (histogram)
//	coordkit_apply_duration_seconds          one batch applied (histogram)
//	coordkit_reaper_tick_seconds             one pass of the observer reaper (histogram)
//	coordkit_sessions                        live sessions made through this member
//	coordkit_disk_low                        1 while the disk is below Config.DiskReserve
//	coordkit_shard_revision                  the shard's revision
//	coordkit_shard_compact_revision          history compacted up to this revision
//	coordkit_shard_applied_index             Raft index applied on this member
//	coordkit_shard_has_leader                1 when a leader is known
//	coordkit_shard_is_leader                 1 when this member leads the shard
//	coordkit_shard_leader_changes_total      leader changes seen by this member
//	coordkit_shard_watchers                  watches open on this member
//	coordkit_shard_leases                    leases in the shard
//	coordkit_shard_store_bytes               the shard's store as the quota counts it
//	coordkit_shard_alarm_nospace             1 while the NOSPACE alarm is raised
//	coordkit_shard_alarm_corrupt             1 while the CORRUPT alarm is raised
//
// The package lives apart from coord so that only applications that export
// to Prometheus link its client library.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coordkit/coordkit/coord"
)

type collector struct {
	n                                  *coord.Node
	proposals, failures, retries       *prometheus.Desc
	proposeSeconds, applySeconds       *prometheus.Desc
	reapSeconds                        *prometheus.Desc
	sessions                           *prometheus.Desc
	diskLow                            *prometheus.Desc
	revision, compacted, applied       *prometheus.Desc
	hasLeader, isLeader, leaderChanges *prometheus.Desc
	watchers, leases                   *prometheus.Desc
	storeBytes, noSpace, corrupt       *prometheus.Desc
	transport                          []*prometheus.Desc // refused, bad handshakes, bad frames, chunks received
	peer                               []peerDesc
}

// peerDesc is one per-peer series and how to read it.
type peerDesc struct {
	d     *prometheus.Desc
	kind  prometheus.ValueType
	value func(coord.PeerMetrics) float64
}

// NewCollector returns a prometheus.Collector of n's metrics. Register it
// once per Node. Collect is safe for concurrent use and does not block on
// the network.
func NewCollector(n *coord.Node) prometheus.Collector {
	member := prometheus.Labels{"member": n.Name()}
	desc := func(name, help string, shard bool) *prometheus.Desc {
		var labels []string
		if shard {
			labels = []string{"shard"}
		}
		return prometheus.NewDesc("coordkit_"+name, help, labels, member)
	}
	peerDescs := []struct {
		name, help string
		value      func(coord.PeerMetrics) float64
	}{
		{"peer_sent_bytes_total", "Bytes sent to the peer.", func(p coord.PeerMetrics) float64 { return float64(p.SentBytes) }},
		{"peer_sent_messages_total", "Raft messages sent to the peer.", func(p coord.PeerMetrics) float64 { return float64(p.SentMessages) }},
		{"peer_sent_batches_total", "Message frames sent to the peer.", func(p coord.PeerMetrics) float64 { return float64(p.SentBatches) }},
		{"peer_sent_snapshot_chunks_total", "Snapshot chunks sent to the peer.", func(p coord.PeerMetrics) float64 { return float64(p.SentSnapshotChunks) }},
		{"peer_writes_total", "Write system calls to the peer.", func(p coord.PeerMetrics) float64 { return float64(p.Writes) }},
		{"peer_received_bytes_total", "Message bytes received from the peer.", func(p coord.PeerMetrics) float64 { return float64(p.ReceivedBytes) }},
		{"peer_received_messages_total", "Raft messages received from the peer.", func(p coord.PeerMetrics) float64 { return float64(p.ReceivedMessages) }},
		{"peer_received_batches_total", "Message frames received from the peer.", func(p coord.PeerMetrics) float64 { return float64(p.ReceivedBatches) }},
		{"peer_dropped_messages_total", "Raft messages to the peer that were not sent.", func(p coord.PeerMetrics) float64 { return float64(p.DroppedMessages) }},
		{"peer_thinned_heartbeats_total", "Heartbeats to the peer, an observer, left out because they carried nothing new.", func(p coord.PeerMetrics) float64 { return float64(p.ThinnedHeartbeats) }},
		{"peer_queue_bytes", "Bytes waiting to be sent to the peer.", func(p coord.PeerMetrics) float64 { return float64(p.QueueBytes) }},
	}
	var peers []peerDesc
	for _, p := range peerDescs {
		kind := prometheus.CounterValue
		if p.name == "peer_queue_bytes" {
			kind = prometheus.GaugeValue
		}
		peers = append(peers, peerDesc{prometheus.NewDesc("coordkit_"+p.name, p.help, []string{"peer"}, member), kind, p.value})
	}
	return &collector{
		n:    n,
		peer: peers,
		transport: []*prometheus.Desc{
			desc("transport_refused_connections_total", "Inbound peer connections closed before they proved they belong to the cluster.", false),
			desc("transport_bad_handshakes_total", "Inbound peer connections that sent a wrong proof of the cluster secret, or no coordkit greeting.", false),
			desc("transport_bad_frames_total", "Peer connections closed for a malformed, oversized or undecodable frame.", false),
			desc("transport_snapshot_chunks_received_total", "Snapshot chunks received from peers.", false),
		},
		proposals:      desc("proposals_total", "Writes this member proposed to Raft.", false),
		failures:       desc("proposal_failures_total", "Proposals that ended in an error (timeout, unknown outcome, closed).", false),
		retries:        desc("proposal_retries_total", "Write attempts that timed out and were proposed again (applied at most once).", false),
		proposeSeconds: desc("proposal_duration_seconds", "Time from proposing a write to its result.", false),
		applySeconds:   desc("apply_duration_seconds", "Time to apply one batch of committed entries.", false),
		reapSeconds:    desc("reaper_tick_seconds", "Time of one pass of the observer reaper, on the leader of shard 0.", false),
		sessions:       desc("sessions", "Live sessions made through this member.", false),
		diskLow:        desc("disk_low", "1 while the disk holding DataDir has less free space than Config.DiskReserve: the member takes no writes.", false),
		revision:       desc("shard_revision", "The shard's revision on this member.", true),
		compacted:      desc("shard_compact_revision", "History of the shard is compacted up to this revision.", true),
		applied:        desc("shard_applied_index", "Raft index applied by this member's replica.", true),
		hasLeader:      desc("shard_has_leader", "1 when this member knows a leader of the shard.", true),
		isLeader:       desc("shard_is_leader", "1 when this member leads the shard.", true),
		leaderChanges:  desc("shard_leader_changes_total", "Leader changes of the shard seen by this member.", true),
		watchers:       desc("shard_watchers", "Watches open on this member.", true),
		leases:         desc("shard_leases", "Leases in the shard.", true),
		storeBytes:     desc("shard_store_bytes", "The shard's store as Config.MaxStoreBytes counts it.", true),
		noSpace:        desc("shard_alarm_nospace", "1 while the shard's NOSPACE alarm is raised: writes that grow it are refused.", true),
		corrupt:        desc("shard_alarm_corrupt", "1 while the shard's CORRUPT alarm is raised: its replicas diverged and its writes are refused.", true),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.proposals, c.failures, c.retries, c.proposeSeconds, c.applySeconds, c.reapSeconds, c.sessions, c.diskLow,
		c.revision, c.compacted, c.applied, c.hasLeader, c.isLeader, c.leaderChanges, c.watchers, c.leases,
		c.storeBytes, c.noSpace, c.corrupt} {
		ch <- d
	}
	for _, d := range c.transport {
		ch <- d
	}
	for _, p := range c.peer {
		ch <- p.d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.n.Metrics()
	ch <- prometheus.MustNewConstMetric(c.proposals, prometheus.CounterValue, float64(m.Proposals))
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(m.ProposalFailures))
	ch <- prometheus.MustNewConstMetric(c.retries, prometheus.CounterValue, float64(m.ProposalRetries))
	ch <- histogram(c.proposeSeconds, m.ProposalSeconds)
	ch <- histogram(c.applySeconds, m.ApplySeconds)
	ch <- histogram(c.reapSeconds, m.ReaperSeconds)
	ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(m.Sessions))
	low := 0.0
	if m.DiskLow {
		low = 1
	}
	ch <- prometheus.MustNewConstMetric(c.diskLow, prometheus.GaugeValue, low)
	for _, s := range m.Shards {
		shard := strconv.Itoa(s.Shard)
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, shard)
		}
		gauge(c.revision, float64(s.Revision))
		gauge(c.compacted, float64(s.CompactRevision))
		gauge(c.applied, float64(s.AppliedIndex))
		gauge(c.hasLeader, b2f(s.HasLeader))
		gauge(c.isLeader, b2f(s.IsLeader))
		ch <- prometheus.MustNewConstMetric(c.leaderChanges, prometheus.CounterValue, float64(s.LeaderChanges), shard)
		gauge(c.watchers, float64(s.Watchers))
		gauge(c.leases, float64(s.Leases))
		gauge(c.storeBytes, float64(s.StoreBytes))
		gauge(c.noSpace, b2f(s.NoSpace))
		gauge(c.corrupt, b2f(s.Corrupt))
	}
	t := m.Transport
	for i, v := range []uint64{t.RefusedConnections, t.BadHandshakes, t.BadFrames, t.SnapshotChunksReceived} {
		ch <- prometheus.MustNewConstMetric(c.transport[i], prometheus.CounterValue, float64(v))
	}
	for _, p := range t.Peers {
		for _, d := range c.peer {
			ch <- prometheus.MustNewConstMetric(d.d, d.kind, d.value(p), p.Address)
		}
	}
}

func histogram(d *prometheus.Desc, h coord.Histogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Counts[i]
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
