package coord_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/internal/proctest"
)

func memberNamed(t *testing.T, n *coord.Node, name string) (coord.Member, bool) {
	t.Helper()
	ms, err := n.Members(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return coord.Member{}, false
}

func serializableCount(n *coord.Node, prefix string) int64 {
	g, err := n.Get(context.Background(), prefix, coord.WithPrefix(), coord.WithSerializable(), coord.WithCountOnly())
	if err != nil {
		return -1
	}
	return g.Count
}

func TestObserverReadsLocallyWritesThroughLeaderAndIsNotInQuorum(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	for i := 0; i < 50; i++ {
		mustPut(t, c.Node(i%3), fmt.Sprintf("/obs/k%d", i), "v")
	}
	o := c.JoinObserver()
	obs := c.Node(o)
	coordtest.Eventually(t, 10*time.Second, func() bool { return serializableCount(obs, "/obs/") == 50 },
		"the observer did not catch up")
	m, ok := memberNamed(t, c.Node(0), c.Config(o).Name)
	if !ok || m.Voter || !m.Reachable {
		t.Fatalf("observer as listed: %+v (found %v), want a reachable non-voter", m, ok)
	}
	// A write through the observer goes through the leader; a watch on the
	// observer sees writes made elsewhere.
	w := obs.Watch(ctx, "/obs/", coord.WithPrefix())
	mustPut(t, obs, "/obs/from-observer", "x")
	mustPut(t, c.Node(1), "/obs/from-voter", "y")
	seen := map[string]bool{}
	for len(seen) < 2 {
		r := <-w
		if r.Err() != nil {
			t.Fatal(r.Err())
		}
		for _, ev := range r.Events {
			seen[ev.KV.Key] = true
		}
	}
	// Not in the quorum: with one of three voters down, writes go on; with
	// two down the observer does not make up a majority.
	c.Stop(2)
	mustPut(t, obs, "/obs/one-voter-down", "z")
	c.Stop(1)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := obs.Put(sctx, "/obs/no-quorum", nil); err == nil {
		t.Fatal("a write succeeded with one voter of three and an observer: the observer counted toward quorum")
	}
	// Reads from its own replica still work.
	if n := serializableCount(obs, "/obs/"); n != 53 {
		t.Fatalf("observer's local read: %d keys, want 53", n)
	}
}

func TestPromoteObserverAndItRestartsAsAVoter(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	o := c.JoinObserver()
	name := c.Config(o).Name
	if err := c.Node(0).PromoteMember(ctx, name); err != nil {
		t.Fatal(err)
	}
	if m, _ := memberNamed(t, c.Node(1), name); !m.Voter {
		t.Fatalf("after promotion: %+v, want a voter", m)
	}
	if err := c.Node(0).PromoteMember(ctx, name); !errors.Is(err, coord.ErrInvalidArgument) {
		t.Fatalf("promoting a voter: %v, want ErrInvalidArgument", err)
	}
	// It counts now: with it, 3 of 4 voters form a quorum after one stops,
	// and it restarts as a voter (its Config still says Observer).
	c.Stop(o)
	c.Restart(o)
	c.Stop(0)
	// A proposal forwarded to the stopped leader just before it went would
	// wait out its whole deadline (a known limit, see the README): write
	// once this member knows the new leader.
	coordtest.Eventually(t, 10*time.Second, func() bool {
		l := statusOf(t, c.Node(o)).Shards[0].Leader
		return l != 0 && l != 1 // founders' IDs follow their sorted names: m0 is 1
	}, "the restarted member does not know a new leader")
	mustPut(t, c.Node(o), "/promoted/x", "1")
	if m, _ := memberNamed(t, c.Node(o), name); !m.Voter {
		t.Fatalf("after restart: %+v, want a voter", m)
	}
	// Leadership can move to it: only a voter's replica can lead.
	if err := c.Node(1).MoveLeader(ctx, 0, name); err != nil {
		t.Fatal(err)
	}
	// MoveLeader returns once the member asked sees the new leader; the
	// others learn it from its next heartbeat.
	coordtest.Eventually(t, 10*time.Second, func() bool { return c.Leader(0) == o }, "the cluster does not agree that the promoted member leads")
}

func TestRemoveMemberRefusesToLoseQuorumAndHandsOverLeadership(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	mustPut(t, c.Node(0), "/rm/before", "x")
	leader := c.WaitLeader(0)
	dead := (leader + 1) % 3
	alive := (leader + 2) % 3
	c.Stop(dead)
	// Removing the leader would leave {dead, alive}: one of two reachable.
	err := c.Node(alive).RemoveMember(ctx, c.Config(leader).Name)
	if !errors.Is(err, coord.ErrQuorum) {
		t.Fatalf("removing a member that would break quorum: %v, want ErrQuorum", err)
	}
	t.Log(err)
	if err := c.Node(alive).RemoveMember(ctx, "nobody"); !errors.Is(err, coord.ErrMemberNotFound) {
		t.Fatalf("removing an unknown member: %v", err)
	}
	// Replacing a dead member: remove it (the two left are reachable).
	if err := c.Node(alive).RemoveMember(ctx, c.Config(dead).Name); err != nil {
		t.Fatal(err)
	}
	if _, ok := memberNamed(t, c.Node(alive), c.Config(dead).Name); ok {
		t.Fatal("removed member still listed")
	}
	// A removed member's name and address never come back (IDs are not reused).
	if _, err := c.Node(alive).AddMember(ctx, c.Config(dead).Name, c.Config(dead).RaftAddress); !errors.Is(err, coord.ErrMemberExists) {
		t.Fatalf("re-adding a removed member: %v, want ErrMemberExists", err)
	}
	// Removing the leader of a two-voter cluster: one voter left, reachable.
	mustPut(t, c.Node(alive), "/rm/two", "y")
	if err := c.Node(alive).RemoveMember(ctx, c.Config(leader).Name); err != nil {
		t.Fatal(err)
	}
	// Leadership was handed over before the removal: the survivor leads and
	// serves at once.
	coordtest.Eventually(t, 10*time.Second, func() bool { return c.Leader(0) == alive }, "survivor does not lead")
	mustPut(t, c.Node(alive), "/rm/alone", "z")
	if g, err := c.Node(alive).Get(ctx, "/rm/", coord.WithPrefix()); err != nil || g.Count != 3 {
		t.Fatalf("survivor: %v, %v", g, err)
	}
	// The last voter is never removed.
	if err := c.Node(alive).RemoveMember(ctx, c.Config(alive).Name, coord.Force()); !errors.Is(err, coord.ErrQuorum) {
		t.Fatalf("removing the last voter: %v, want ErrQuorum", err)
	}
}

func TestAddVoterRefusedWhenTheLargerClusterWouldLackQuorum(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	c.Stop(2)
	// 2 of 3 reachable; with a 4th voter not yet started, 2 of 4 < 3.
	_, err := c.Node(0).AddMember(ctx, "m9", proctest.FreeAddr(t))
	if !errors.Is(err, coord.ErrQuorum) {
		t.Fatalf("adding a voter with one member down: %v, want ErrQuorum", err)
	}
	// An observer never counts, so it is allowed.
	if _, err := c.Node(0).AddMember(ctx, "o9", proctest.FreeAddr(t), coord.AsObserver()); err != nil {
		t.Fatal(err)
	}
	m, ok := memberNamed(t, c.Node(0), "o9")
	if !ok || m.Voter || m.Reachable {
		t.Fatalf("added observer not started yet: %+v", m)
	}
	// Adding it again is refused at once, not retried until the deadline.
	if _, err := c.Node(1).AddMember(ctx, "o9", m.Address, coord.AsObserver()); !errors.Is(err, coord.ErrMemberExists) {
		t.Fatalf("adding an existing member again: %v, want ErrMemberExists", err)
	}
}

// seededCluster starts three voters that answer admission requests, with
// the given ObserverGracePeriod, and returns their AdminAddresses.
func seededCluster(t *testing.T, grace time.Duration) (*coordtest.Cluster, []string) {
	c := coordtest.New(t, 3, coordtest.WithConfig(func(cfg *coord.Config) {
		cfg.AdminAddress, cfg.ObserverGracePeriod = proctest.FreeAddr(t), grace
	}))
	admin := make([]string, c.Size())
	for i := range admin {
		admin[i] = c.Config(i).AdminAddress
	}
	return c, admin
}

func TestObserversJoinThroughSeedsAndAreRemovedWhenGone(t *testing.T) {
	c, admin := seededCluster(t, time.Second)
	ctx := ctxT(t)
	for i := 0; i < 30; i++ {
		mustPut(t, c.Node(i%3), fmt.Sprintf("/fleet/k%d", i), "v")
	}
	cfg := coord.Config{Name: "svc-1", DataDir: t.TempDir(), RaftAddress: proctest.FreeAddr(t), ClusterToken: "coordtest",
		ClusterSecret: coordtest.Secret, Join: true, Observer: true, JoinSeeds: []string{proctest.FreeAddr(t), admin[1]}, // the first seed is down
		HeartbeatInterval: coordtest.HeartbeatInterval, ElectionTimeout: coordtest.ElectionTimeout, Logger: quietLogger()}
	// A wrong cluster token is refused by the seed.
	bad := cfg
	bad.ClusterToken, bad.DataDir = "another-cluster", t.TempDir()
	if _, err := coord.Open(ctx, bad); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("joining with another cluster's token: %v", err)
	}
	// So is a wrong secret, and no secret at all is a configuration error.
	bad = cfg
	bad.ClusterSecret, bad.DataDir = "not-the-cluster-secret", t.TempDir()
	if _, err := coord.Open(ctx, bad); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("joining with another secret: %v", err)
	}
	bad.ClusterSecret = ""
	if _, err := coord.Open(ctx, bad); !errors.Is(err, coord.ErrInvalidConfig) || !strings.Contains(err.Error(), "ClusterSecret") {
		t.Fatalf("joining without a secret: %v", err)
	}
	obs, err := coord.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 10*time.Second, func() bool { return serializableCount(obs, "/fleet/") == 30 },
		"the admitted observer did not catch up")
	m1, ok := memberNamed(t, c.Node(0), "svc-1")
	if !ok || m1.Voter {
		t.Fatalf("admitted observer as listed: %+v (found %v)", m1, ok)
	}
	// Restarted within the grace period, it resumes under the same ID.
	obs.Close()
	if obs, err = coord.Open(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if m, _ := memberNamed(t, c.Node(2), "svc-1"); m.ID != m1.ID {
		t.Fatalf("a quick restart changed the observer's ID: %d, then %d", m1.ID, m.ID)
	}
	// Gone for longer than the grace period, it is removed by the leader.
	obs.Close()
	coordtest.Eventually(t, 20*time.Second, func() bool {
		_, ok := memberNamed(t, c.Node(0), "svc-1")
		return !ok
	}, "a departed observer was not removed after the grace period")
	// Started again, it learns it was removed and joins afresh.
	mustPut(t, c.Node(0), "/fleet/while-away", "v")
	if obs, err = coord.Open(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	coordtest.Eventually(t, 10*time.Second, func() bool { return serializableCount(obs, "/fleet/") == 31 },
		"the rejoined observer did not catch up")
	m2, ok := memberNamed(t, c.Node(0), "svc-1")
	if !ok || m2.ID == m1.ID || m2.Voter {
		t.Fatalf("rejoined observer: %+v (found %v); first ID %d", m2, ok, m1.ID)
	}
	// Voters are never removed automatically.
	c.Stop(2)
	time.Sleep(2 * time.Second) // longer than the grace period: time must pass
	if _, ok := memberNamed(t, c.Node(0), c.Config(2).Name); !ok {
		t.Fatal("an unreachable voter was removed automatically")
	}
}

// A newcomer that takes the name or the address of an observer is admitted
// at once, replacing it, when that observer is unreachable; while it is
// reachable the newcomer is refused. The grace period is long here, so the
// reaper does not act.
func TestAdmissionReplacesAnUnreachableObserverOfTheSameNameOrAddress(t *testing.T) {
	c, admin := seededCluster(t, time.Hour)
	ctx := ctxT(t)
	mustPut(t, c.Node(0), "/fleet/k", "v")
	observer := func(name, addr string) coord.Config {
		return coord.Config{Name: name, DataDir: t.TempDir(), RaftAddress: addr, ClusterToken: "coordtest",
			ClusterSecret: coordtest.Secret, Join: true, Observer: true, JoinSeeds: admin,
			HeartbeatInterval: coordtest.HeartbeatInterval, ElectionTimeout: coordtest.ElectionTimeout, Logger: quietLogger()}
	}
	open := func(cfg coord.Config) *coord.Node {
		t.Helper()
		n, err := coord.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		coordtest.Eventually(t, 10*time.Second, func() bool { return serializableCount(n, "/fleet/") == 1 },
			"observer %s did not catch up", cfg.Name)
		return n
	}
	first := open(observer("svc-1", proctest.FreeAddr(t)))
	old, _ := memberNamed(t, c.Node(0), "svc-1")

	// Rescheduled at another address with an empty DataDir: refused while
	// the first instance is up, admitted in its place once it is gone.
	moved := observer("svc-1", proctest.FreeAddr(t))
	if _, err := coord.Open(ctx, moved); err == nil || !strings.Contains(err.Error(), "member exists") {
		t.Fatalf("a second live svc-1: %v, want it refused as an existing member", err)
	}
	first.Close()
	open(moved)
	now, ok := memberNamed(t, c.Node(1), "svc-1")
	if !ok || now.ID == old.ID || now.Address != moved.RaftAddress || now.Voter {
		t.Fatalf("svc-1 after the move: %+v (found %v), before %+v", now, ok, old)
	}

	// Another name at a departed observer's address replaces it.
	addr := proctest.FreeAddr(t)
	open(observer("svc-2", addr)).Close()
	open(observer("svc-3", addr))
	if _, ok := memberNamed(t, c.Node(2), "svc-2"); ok {
		t.Fatal("svc-2 still listed after svc-3 took its address")
	}
	if m, ok := memberNamed(t, c.Node(2), "svc-3"); !ok || m.Address != addr {
		t.Fatalf("svc-3: %+v (found %v), want it at %s", m, ok, addr)
	}

	// A voter's name is never taken over, even while the voter is down.
	c.Stop(2)
	if _, err := coord.Open(ctx, observer(c.Config(2).Name, proctest.FreeAddr(t))); err == nil || !strings.Contains(err.Error(), "member exists") {
		t.Fatalf("an observer taking a stopped voter's name: %v, want it refused", err)
	}
}

func tlsCluster(t *testing.T, ca *coordtest.CA) *coordtest.Cluster {
	return coordtest.New(t, 3, coordtest.WithConfig(func(cfg *coord.Config) { cfg.TLS = ca.Issue(cfg.Name) }))
}

// A process that cannot present a certificate from the cluster's CA never
// gets a message processed: added as an observer, it never receives data,
// and the cluster keeps serving.
func TestTLSRefusesMembersWithoutTheClusterCA(t *testing.T) {
	ca := coordtest.NewCA(t)
	c := tlsCluster(t, ca)
	ctx := ctxT(t)
	mustPut(t, c.Node(0), "/tls/a", "1")
	if g, err := c.Node(2).Get(ctx, "/tls/a"); err != nil || g.Count != 1 {
		t.Fatalf("read over TLS: %v, %v", g, err)
	}
	for _, tc := range []struct {
		name string
		tls  *coord.TLSConfig
	}{
		{"other-ca", coordtest.NewCA(t).Issue("rogue")},
		{"plaintext", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := proctest.FreeAddr(t)
			if _, err := c.Node(0).AddMember(ctx, tc.name, addr, coord.AsObserver()); err != nil {
				t.Fatal(err)
			}
			cfg := c.Config(0)
			cfg.Name, cfg.RaftAddress, cfg.DataDir = tc.name, addr, t.TempDir()
			cfg.Join, cfg.Observer, cfg.InitialCluster, cfg.TLS = true, true, nil, tc.tls
			rogue, err := coord.Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer rogue.Close()
			for i := 0; i < 20; i++ {
				mustPut(t, c.Node(i%3), fmt.Sprintf("/tls/%s/%d", tc.name, i), "v")
			}
			// The rogue's writes never reach the leader.
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if _, err := rogue.Put(wctx, "/tls/from-rogue", []byte("x")); err == nil {
				t.Fatal("a member without the cluster's CA wrote to the cluster")
			}
			// Nor does it receive anything: the TLS members' data never
			// arrives (checked after the writes above had time to travel).
			if n := serializableCount(rogue, "/tls/"); n > 0 {
				t.Fatalf("a member without the cluster's CA received %d keys", n)
			}
			if g, err := c.Node(1).Get(ctx, "/tls/from-rogue"); err != nil || g.Count != 0 {
				t.Fatalf("rogue write visible: %v, %v", g, err)
			}
			mustPut(t, c.Node(1), "/tls/still-serving", tc.name)
			if err := c.Node(0).RemoveMember(ctx, tc.name); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Garbage on a TLS member's Raft port is refused by the handshake: the
// member keeps serving and answers the next real peer.
func TestTLSPortSurvivesGarbage(t *testing.T) {
	ca := coordtest.NewCA(t)
	c := tlsCluster(t, ca)
	for i := 0; i < 50; i++ {
		conn, err := net.DialTimeout("tcp", c.Config(1).RaftAddress, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(time.Second))
		conn.Write([]byte(strings.Repeat("\x16\x03\x01\xff\xff garbage", 100)))
		conn.Close()
	}
	mustPut(t, c.Node(1), "/garbage/after", "ok")
	if g, err := c.Node(2).Get(ctxT(t), "/garbage/after"); err != nil || g.Count != 1 {
		t.Fatalf("after garbage: %v, %v", g, err)
	}
}

func TestPlaintextRefusedOnNonLoopbackAddress(t *testing.T) {
	ctx := ctxT(t)
	for _, addr := range []string{"10.1.2.3:2380", "0.0.0.0:2380", "node-a.example:2380"} {
		_, err := coord.Open(ctx, coord.Config{DataDir: t.TempDir(), RaftAddress: addr, Logger: quietLogger()})
		if !errors.Is(err, coord.ErrInvalidConfig) || !strings.Contains(err.Error(), "RaftAddress") || !strings.Contains(err.Error(), "TLS") {
			t.Fatalf("plaintext on %s: %v, want ErrInvalidConfig naming RaftAddress and TLS", addr, err)
		}
	}
	// TLS files that do not exist are named.
	_, err := coord.Open(ctx, coord.Config{DataDir: t.TempDir(), RaftAddress: "10.1.2.3:2380", Logger: quietLogger(),
		TLS: &coord.TLSConfig{CAFile: "/nonexistent/ca.pem", CertFile: "c", KeyFile: "k"}})
	if !errors.Is(err, coord.ErrInvalidConfig) || !strings.Contains(err.Error(), "TLS.CAFile") {
		t.Fatalf("missing CA file: %v", err)
	}
	// Observer without Join is refused.
	_, err = coord.Open(ctx, coord.Config{DataDir: t.TempDir(), Observer: true, Logger: quietLogger()})
	if !errors.Is(err, coord.ErrInvalidConfig) || !strings.Contains(err.Error(), "Observer") {
		t.Fatalf("observer founding a cluster: %v", err)
	}
}

// TestIdentifiers: ID is the member's Raft ID as Members lists it,
// ClusterID is the same on every member and differs between clusters,
// and MinLeaseTTL is the shortest TTL Grant takes.
func TestIdentifiers(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	ms, err := c.Node(0).Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		n := c.Node(i)
		m, ok := memberNamed(t, c.Node(0), n.Name())
		if !ok || m.ID != n.ID() || n.ID() == 0 {
			t.Fatalf("member %d: ID %d, listed %+v (of %d)", i, n.ID(), m, len(ms))
		}
		if n.ClusterID() != c.Node(0).ClusterID() {
			t.Fatalf("member %d has cluster ID %x, member 0 %x", i, n.ClusterID(), c.Node(0).ClusterID())
		}
	}
	other := coordtest.New(t, 1, coordtest.WithConfig(func(cfg *coord.Config) { cfg.ClusterToken = "another" }))
	if other.Node(0).ClusterID() == c.Node(0).ClusterID() {
		t.Fatal("two clusters with different tokens share a cluster ID")
	}
	min := c.Node(0).MinLeaseTTL()
	if _, err := c.Node(0).Grant(ctx, min); err != nil {
		t.Fatalf("Grant(MinLeaseTTL): %v", err)
	}
	if _, err := c.Node(0).Grant(ctx, min-time.Millisecond); !errors.Is(err, coord.ErrInvalidTTL) {
		t.Fatalf("Grant below MinLeaseTTL: %v", err)
	}
}
