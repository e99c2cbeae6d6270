package metrics_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func gather(t *testing.T, n *coord.Node) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.NewCollector(n))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok || len(f.Metric) == 0 {
		t.Fatalf("metric %s missing", name)
	}
	m := f.Metric[0]
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("metric %s has no value", name)
	return 0
}

func TestCollectorReportsWhatTheMemberDid(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := coordtest.Context(t, 30*time.Second)
	n := c.Node(1)
	for i := 0; i < 20; i++ {
		if _, err := n.Put(ctx, fmt.Sprintf("/m/k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n.Watch(wctx, "/m/", coord.WithPrefix())
	coordtest.Session(t, n, 5*time.Second)
	fams := gather(t, n)
	if v := value(t, fams, "coordkit_proposals_total"); v < 21 { // 20 puts and a session's grant
		t.Fatalf("proposals_total %v, want at least 21", v)
	}
	if v := value(t, fams, "coordkit_proposal_retries_total"); v != float64(n.Metrics().ProposalRetries) {
		t.Fatalf("proposal_retries_total %v, member says %d", v, n.Metrics().ProposalRetries)
	}
	if v := value(t, fams, "coordkit_proposal_duration_seconds"); v < 21 {
		t.Fatalf("proposal histogram counted %v, want at least 21", v)
	}
	if v := value(t, fams, "coordkit_apply_duration_seconds"); v < 1 {
		t.Fatalf("apply histogram counted %v", v)
	}
	if v := value(t, fams, "coordkit_sessions"); v != 1 {
		t.Fatalf("sessions %v, want 1", v)
	}
	st, err := n.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := value(t, fams, "coordkit_shard_revision"); v != float64(st.Shards[0].Revision) {
		t.Fatalf("shard_revision %v, want %d", v, st.Shards[0].Revision)
	}
	coordtest.Eventually(t, 5*time.Second, func() bool {
		return value(t, gather(t, n), "coordkit_shard_watchers") == 1
	}, "the open watch is not counted")
	if v := value(t, fams, "coordkit_shard_leases"); v != 1 {
		t.Fatalf("shard_leases %v, want 1", v)
	}
	if v := value(t, fams, "coordkit_shard_store_bytes"); v != float64(st.Shards[0].StoreBytes) || v <= 0 {
		t.Fatalf("shard_store_bytes %v, want %d", v, st.Shards[0].StoreBytes)
	}
	if a, b := value(t, fams, "coordkit_shard_alarm_nospace"), value(t, fams, "coordkit_shard_alarm_corrupt"); a != 0 || b != 0 {
		t.Fatalf("alarms %v %v with none raised", a, b)
	}
	// Exactly one member leads, every member knows a leader, and a forced
	// change of leader is counted.
	leaders := 0.0
	for i := 0; i < 3; i++ {
		f := gather(t, c.Node(i))
		leaders += value(t, f, "coordkit_shard_is_leader")
		if value(t, f, "coordkit_shard_has_leader") != 1 {
			t.Fatalf("member %d knows no leader", i)
		}
	}
	if leaders != 1 {
		t.Fatalf("%v members say they lead shard 0", leaders)
	}
	before := value(t, gather(t, n), "coordkit_shard_leader_changes_total")
	// The leadership moves to this member, or away from it if it leads
	// already: either way it has led, and so sent to both peers.
	next := c.Config(1).Name
	if l := c.WaitLeader(0); l == 1 {
		next = c.Config((l + 1) % 3).Name
	}
	if err := n.MoveLeader(ctx, 0, next); err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 5*time.Second, func() bool {
		return value(t, gather(t, n), "coordkit_shard_leader_changes_total") > before
	}, "a leader change was not counted")
	// Peer traffic: one series per peer, and a stranger on the Raft port
	// is counted.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		f := gather(t, n)["coordkit_peer_sent_messages_total"]
		if f == nil || len(f.Metric) != 2 {
			t.Fatalf("peer_sent_messages_total: %v, want a series for each of 2 peers", f)
		}
		sent := 0
		for _, m := range f.Metric {
			if m.Label[len(m.Label)-1].GetName() != "peer" {
				t.Fatalf("peer series %v has no peer label", m)
			}
			if m.Counter.GetValue() > 0 {
				sent++
			}
		}
		if sent == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer series %v: a member that has led sent nothing to a peer", f.Metric)
		}
	}
	// Each peer is heard from soon, but not at once: when the leadership
	// moved to this member, a peer that was a fellow follower has sent it
	// nothing until it answers the new leader.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		peers := n.Metrics().Transport.Peers
		if len(peers) == 2 && peers[0].SentMessages > 0 && peers[0].ReceivedMessages > 0 && peers[0].Writes > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Metrics().Transport.Peers = %+v", peers)
		}
	}
	conn, err := net.Dial("tcp", c.Config(1).RaftAddress)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	conn.Close()
	coordtest.Eventually(t, 5*time.Second, func() bool {
		return value(t, gather(t, n), "coordkit_transport_bad_handshakes_total") == 1
	}, "garbage on the Raft port was not counted")
	// Lint: names, help and types follow Prometheus conventions.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.NewCollector(n))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if !strings.Contains(p.Text, "counter metrics should have \"_total\" suffix") {
			t.Errorf("lint %s: %s", p.Metric, p.Text)
		}
	}
}
