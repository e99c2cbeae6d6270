package coord_test

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/internal/dnstest"
	"github.com/coordkit/coordkit/internal/proctest"
)

// TestObserverJoinsThroughDNSSeeds: an observer whose only seed is an SRV
// name, served by a DNS server on loopback, asks again while the name does
// not exist yet, and joins through the targets once the records appear,
// in the order DNS gives them (the first target is down).
func TestObserverJoinsThroughDNSSeeds(t *testing.T) {
	c, admin := seededCluster(t, time.Minute)
	ctx := ctxT(t)
	mustPut(t, c.Node(0), "/dns/k", "v")
	dns := dnstest.Start(t)
	const name = "_coordkit-admin._tcp.cluster.test"
	srv := func(addr string, priority uint16) net.SRV { // addr on 127.0.0.1: the target is named localhost
		_, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		return net.SRV{Target: "localhost", Port: uint16(p), Priority: priority, Weight: 1}
	}
	cfg := coord.Config{Name: "svc-dns", DataDir: t.TempDir(), RaftAddress: proctest.FreeAddr(t), ClusterToken: "coordtest",
		ClusterSecret: coordtest.Secret, Join: true, Observer: true, JoinSeeds: []string{"srv:" + name},
		DNSResolver: dns.Resolver(), HeartbeatInterval: coordtest.HeartbeatInterval, ElectionTimeout: coordtest.ElectionTimeout,
		Logger: quietLogger()}
	opened := make(chan error, 1)
	var obs *coord.Node
	go func() {
		var err error
		obs, err = coord.Open(ctx, cfg)
		opened <- err
	}()
	// No record yet: the observer keeps asking DNS.
	coordtest.Eventually(t, 20*time.Second, func() bool { return dns.Queries() >= 2 }, "the observer did not look the name up again")
	select {
	case err := <-opened:
		t.Fatalf("Open returned before the name existed: %v", err)
	default:
	}
	dns.Set(name, srv(proctest.FreeAddr(t), 0), srv(admin[2], 10))
	select {
	case err := <-opened:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the observer did not join once the SRV records appeared")
	}
	defer obs.Close()
	coordtest.Eventually(t, 10*time.Second, func() bool { return serializableCount(obs, "/dns/") == 1 },
		"the observer admitted through DNS did not catch up")
	if m, ok := memberNamed(t, c.Node(0), "svc-dns"); !ok || m.Voter {
		t.Fatalf("observer as listed: %+v (found %v)", m, ok)
	}
}
