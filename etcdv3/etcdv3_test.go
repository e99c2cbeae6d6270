package etcdv3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// clientv3's resolver and balancer goroutines end a little after Close.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
	)
}

// cluster is a coordkit cluster with the v3 API served on every member.
type cluster struct {
	*coordtest.Cluster
	endpoints []string
}

func serve(t *testing.T, n int, opts ...coordtest.Option) *cluster {
	t.Helper()
	c := &cluster{Cluster: coordtest.New(t, n, opts...)}
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		url := "http://" + lis.Addr().String()
		Register(srv, c.Node(i), WithClientURLs(url))
		go srv.Serve(lis)
		t.Cleanup(srv.Stop)
		c.endpoints = append(c.endpoints, url)
	}
	return c
}

func client(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctxT(t *testing.T) context.Context { return coordtest.Context(t, time.Minute) }

func TestKVAndTxn(t *testing.T) {
	c := serve(t, 3)
	ctx := ctxT(t)
	cli := client(t, c.endpoints...)
	other := client(t, c.endpoints[2])

	p, err := cli.Put(ctx, "/kv/a", "1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Header.ClusterId != c.Node(0).ClusterID() || p.Header.Revision <= 0 || p.Header.RaftTerm == 0 {
		t.Fatalf("put header %+v", p.Header)
	}
	cli.Put(ctx, "/kv/b", "2")
	cli.Put(ctx, "/kv/c", "3")
	g, err := other.Get(ctx, "/kv/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(2))
	if err != nil {
		t.Fatal(err)
	}
	if g.Count != 3 || !g.More || len(g.Kvs) != 2 || string(g.Kvs[0].Key) != "/kv/c" || string(g.Kvs[1].Value) != "2" {
		t.Fatalf("get prefix on another member: %+v", g)
	}
	if g.Header.MemberId != c.Node(2).ID() {
		t.Fatalf("header member %x, want the serving member %x", g.Header.MemberId, c.Node(2).ID())
	}
	g, _ = other.Get(ctx, "/kv/a", clientv3.WithRev(p.Header.Revision))
	if len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "1" || g.Kvs[0].ModRevision != p.Header.Revision {
		t.Fatalf("get at a revision: %+v", g)
	}
	g, _ = other.Get(ctx, "/kv/", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable())
	if g.Count != 3 || len(g.Kvs) != 0 {
		t.Fatalf("serializable count: %+v", g)
	}

	// Compare-and-swap on the mod revision, as clientv3's STM does.
	a, _ := cli.Get(ctx, "/kv/a")
	rev := a.Kvs[0].ModRevision
	tr, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("/kv/a"), "=", rev)).
		Then(clientv3.OpPut("/kv/a", "swapped"), clientv3.OpGet("/kv/b")).Else(clientv3.OpGet("/kv/a")).Commit()
	if err != nil || !tr.Succeeded || string(tr.Responses[1].GetResponseRange().Kvs[0].Value) != "2" {
		t.Fatalf("txn: %+v %v", tr, err)
	}
	tr, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("/kv/a"), "=", rev)).
		Then(clientv3.OpPut("/kv/a", "again")).Else(clientv3.OpGet("/kv/a")).Commit()
	if err != nil || tr.Succeeded || string(tr.Responses[0].GetResponseRange().Kvs[0].Value) != "swapped" {
		t.Fatalf("stale txn: %+v %v", tr, err)
	}
	tr, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("/kv/b"), "=", "2"), clientv3.Compare(clientv3.Version("/kv/missing"), "=", 0)).
		Then(clientv3.OpDelete("/kv/", clientv3.WithPrefix(), clientv3.WithPrevKV())).Commit()
	if err != nil || !tr.Succeeded || tr.Responses[0].GetResponseDeleteRange().Deleted != 3 || len(tr.Responses[0].GetResponseDeleteRange().PrevKvs) != 3 {
		t.Fatalf("txn delete: %+v %v", tr, err)
	}

	// Delete with prev_kv, and a range with nothing in it.
	cli.Put(ctx, "/kv/d", "4")
	d, err := cli.Delete(ctx, "/kv/d", clientv3.WithPrevKV())
	if err != nil || d.Deleted != 1 || string(d.PrevKvs[0].Value) != "4" {
		t.Fatalf("delete: %+v %v", d, err)
	}
	g, err = cli.Get(ctx, "/kv/z", clientv3.WithRange("/kv/a"))
	if err != nil || len(g.Kvs) != 0 {
		t.Fatalf("empty range: %+v %v", g, err)
	}

	// Errors are etcd's.
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"empty key", func() error { _, err := cli.Put(ctx, "", "x"); return err }(), rpctypes.ErrEmptyKey},
		{"future revision", func() error { _, err := cli.Get(ctx, "/kv/a", clientv3.WithRev(1<<40)); return err }(), rpctypes.ErrFutureRev},
		{"lease not found", func() error { _, err := cli.Put(ctx, "/kv/l", "x", clientv3.WithLease(12345)); return err }(), rpctypes.ErrLeaseNotFound},
		{"request too large", func() error { _, err := cli.Put(ctx, "/kv/big", string(make([]byte, 1200<<10))); return err }(), rpctypes.ErrRequestTooLarge},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	now, _ := cli.Get(ctx, "/kv/a")
	if _, err := cli.Compact(ctx, now.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "/kv/a", clientv3.WithRev(rev)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("get below the compaction: %v, want ErrCompacted", err)
	}
}

func TestWatchResumeAndCompacted(t *testing.T) {
	c := serve(t, 3)
	ctx := ctxT(t)
	cli := client(t, c.endpoints[0])
	watcher := client(t, c.endpoints[1])
	first, _ := cli.Put(ctx, "/w/a", "1")
	cli.Put(ctx, "/w/b", "2")
	cli.Delete(ctx, "/w/a")

	// From a past revision: every change since, in order, with prev_kv.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := watcher.Watch(wctx, "/w/", clientv3.WithPrefix(), clientv3.WithRev(first.Header.Revision), clientv3.WithPrevKV())
	var got []string
	for len(got) < 4 {
		select {
		case wr := <-wch:
			if err := wr.Err(); err != nil {
				t.Fatal(err)
			}
			for _, ev := range wr.Events {
				s := fmt.Sprintf("%s %s %s", ev.Type, ev.Kv.Key, ev.Kv.Value)
				if ev.Type == clientv3.EventTypeDelete && ev.PrevKv != nil {
					s += " was " + string(ev.PrevKv.Value)
				}
				got = append(got, s)
			}
			if len(got) == 3 {
				cli.Put(ctx, "/w/c", "3") // live, after the replay
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watch stalled after %v", got)
		}
	}
	want := []string{"PUT /w/a 1", "PUT /w/b 2", "DELETE /w/a  was 1", "PUT /w/c 3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %q, want %q", got, want)
	}

	// From a compacted revision: the watch ends with ErrCompacted and the
	// compaction point.
	last, _ := cli.Put(ctx, "/w/d", "4")
	if _, err := cli.Compact(ctx, last.Header.Revision); err != nil {
		t.Fatal(err)
	}
	// A linearizable read on the watcher's member: it has applied the
	// compaction when the read returns (Compact answers once its own
	// member has).
	if _, err := watcher.Get(ctx, "/w/d"); err != nil {
		t.Fatal(err)
	}
	wr := <-watcher.Watch(wctx, "/w/", clientv3.WithPrefix(), clientv3.WithRev(first.Header.Revision))
	if !errors.Is(wr.Err(), rpctypes.ErrCompacted) || wr.CompactRevision != last.Header.Revision {
		t.Fatalf("watch from a compacted revision: err %v, compact revision %d (want %d)", wr.Err(), wr.CompactRevision, last.Header.Revision)
	}
}

func TestLeaseKeepAliveAndExpiry(t *testing.T) {
	c := serve(t, 3)
	ctx := ctxT(t)
	cli := client(t, c.endpoints...)
	g, err := cli.Grant(ctx, 1) // raised to the cluster's minimum, as etcd raises it
	if err != nil {
		t.Fatal(err)
	}
	min := int64((c.Node(0).MinLeaseTTL() + time.Second - 1) / time.Second)
	if g.TTL != min {
		t.Fatalf("granted TTL %d, want the minimum %d", g.TTL, min)
	}
	if _, err := cli.Put(ctx, "/lease/k", "v", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	kctx, stop := context.WithCancel(ctx)
	ka, err := cli.KeepAlive(kctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Kept alive past two TTLs.
	deadline := time.Now().Add(time.Duration(2*min) * time.Second)
	for time.Now().Before(deadline) {
		select {
		case r := <-ka:
			if r == nil || r.TTL <= 0 {
				t.Fatalf("keep-alive: %+v", r)
			}
		case <-time.After(time.Duration(min) * time.Second):
			t.Fatal("no keep-alive response within a TTL")
		}
	}
	ttl, err := cli.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.GrantedTTL != min || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "/lease/k" {
		t.Fatalf("time to live: %+v %v", ttl, err)
	}
	ls, err := cli.Leases(ctx)
	if err != nil || len(ls.Leases) != 1 || ls.Leases[0].ID != g.ID {
		t.Fatalf("leases: %+v %v", ls, err)
	}
	// Left alone, it expires and its key goes.
	stop()
	coordtest.Eventually(t, 20*time.Second, func() bool {
		r, err := cli.Get(ctx, "/lease/k")
		return err == nil && len(r.Kvs) == 0
	}, "the lease's key outlived it")
	if ttl, err := cli.TimeToLive(ctx, g.ID); err != nil || ttl.TTL != -1 {
		t.Fatalf("time to live of an expired lease: %+v %v", ttl, err)
	}
	if _, err := cli.Revoke(ctx, g.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("revoke of an expired lease: %v", err)
	}
	// Revoke deletes at once.
	g2, _ := cli.Grant(ctx, 60)
	cli.Put(ctx, "/lease/k2", "v", clientv3.WithLease(g2.ID))
	if _, err := cli.Revoke(ctx, g2.ID); err != nil {
		t.Fatal(err)
	}
	if r, _ := cli.Get(ctx, "/lease/k2"); len(r.Kvs) != 0 {
		t.Fatal("a revoked lease's key stayed")
	}
}

// TestConcurrencyMutexAndElection runs etcd's own concurrency package:
// its Mutex excludes, across members, and its Election elects and hands
// over.
func TestConcurrencyMutexAndElection(t *testing.T) {
	c := serve(t, 3)
	ctx := ctxT(t)
	var inside, peak atomic.Int64
	var wg sync.WaitGroup
	const workers, rounds = 6, 5
	for i := range workers {
		cli := client(t, c.endpoints[i%3])
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			m := concurrency.NewMutex(s, "/locks/job")
			for range rounds {
				if err := m.Lock(ctx); err != nil {
					t.Error(err)
					return
				}
				n := inside.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(time.Millisecond) // hold it across a scheduling point
				inside.Add(-1)
				if err := m.Unlock(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if peak.Load() != 1 {
		t.Fatalf("%d holders at once", peak.Load())
	}

	cli0, cli1 := client(t, c.endpoints[0]), client(t, c.endpoints[1])
	s0, err := concurrency.NewSession(cli0)
	if err != nil {
		t.Fatal(err)
	}
	defer s0.Close()
	s1, err := concurrency.NewSession(cli1)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	e0, e1 := concurrency.NewElection(s0, "/elect/svc"), concurrency.NewElection(s1, "/elect/svc")
	if err := e0.Campaign(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	elected := make(chan error, 1)
	go func() { elected <- e1.Campaign(ctx, "b") }()
	obs := e1.Observe(ctx)
	if l := <-obs; string(l.Kvs[0].Value) != "a" {
		t.Fatalf("observed leader %s", l.Kvs[0].Value)
	}
	if err := e0.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-elected; err != nil {
		t.Fatal(err)
	}
	l, err := e0.Leader(ctx)
	if err != nil || string(l.Kvs[0].Value) != "b" {
		t.Fatalf("leader after the handover: %+v %v", l, err)
	}
}

func TestClusterMaintenanceAndAuth(t *testing.T) {
	c := serve(t, 3)
	ctx := ctxT(t)
	cli := client(t, c.endpoints[0])
	ml, err := cli.MemberList(ctx)
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("member list: %+v %v", ml, err)
	}
	for _, m := range ml.Members {
		if m.Name == "" || len(m.PeerURLs) != 1 || m.IsLearner {
			t.Fatalf("member %+v", m)
		}
		if m.ID == c.Node(0).ID() && (len(m.ClientURLs) != 1 || m.ClientURLs[0] != c.endpoints[0]) {
			t.Fatalf("the answering member's client URLs: %v", m.ClientURLs)
		}
	}
	if _, err := cli.Put(ctx, "/status/k", "v"); err != nil {
		t.Fatal(err)
	}
	st, err := cli.Status(ctx, c.endpoints[0])
	if err != nil || st.Version != Version || st.Leader == 0 || st.RaftIndex == 0 || st.Header.MemberId != c.Node(0).ID() {
		t.Fatalf("status: %+v %v", st, err)
	}
	if _, err := cli.AlarmList(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Defragment(ctx, c.endpoints[0]); err != nil {
		t.Fatal(err)
	}
	if as, err := cli.AuthStatus(ctx); err != nil || as.Enabled {
		t.Fatalf("auth status: %+v %v", as, err)
	}
	if _, err := cli.UserAdd(ctx, "u", "p"); !errors.Is(err, rpctypes.ErrAuthNotEnabled) {
		t.Fatalf("user add: %v", err)
	}
	if _, err := cli.HashKV(ctx, c.endpoints[0], 0); err == nil {
		t.Fatal("HashKV answered")
	}
}

// TestShardsRefuseSpanningRequests: with several shards, a request that
// stays in one top-level directory works and carries its shard's
// revision; one that spans shards fails with InvalidArgument and changes
// nothing.
func TestShardsRefuseSpanningRequests(t *testing.T) {
	c := serve(t, 1, coordtest.WithShards(4))
	ctx := ctxT(t)
	cli := client(t, c.endpoints[0])
	n := c.Node(0)
	var a, b string
	for i := 0; a == "" || b == ""; i++ {
		k := fmt.Sprintf("/d%d/k", i)
		switch {
		case a == "":
			a = k
		case n.ShardOf(k) != n.ShardOf(a):
			b = k
		}
	}
	if _, err := cli.Put(ctx, a, "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, b, "2"); err != nil {
		t.Fatal(err)
	}
	g, err := cli.Get(ctx, a)
	if err != nil || len(g.Kvs) != 1 {
		t.Fatalf("single-shard get: %+v %v", g, err)
	}
	for name, err := range map[string]error{
		"get over every key": func() error { _, err := cli.Get(ctx, "/", clientv3.WithPrefix()); return err }(),
		"delete over every key": func() error {
			_, err := cli.Delete(ctx, "/", clientv3.WithPrefix())
			return err
		}(),
		"txn over two shards": func() error {
			_, err := cli.Txn(ctx).Then(clientv3.OpPut(a, "x"), clientv3.OpPut(b, "y")).Commit()
			return err
		}(),
		"compact": func() error { _, err := cli.Compact(ctx, 1); return err }(),
	} {
		if err == nil || !containsAll(err.Error(), "InvalidArgument", "spans shards") {
			t.Errorf("%s: %v, want InvalidArgument saying it spans shards", name, err)
		}
	}
	for _, k := range []string{a, b} {
		if g, _ := cli.Get(ctx, k); len(g.Kvs) != 1 || string(g.Kvs[0].Value) == "x" || string(g.Kvs[0].Value) == "y" {
			t.Fatalf("%s after refused requests: %+v", k, g)
		}
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestMembershipThroughTheClusterService adds, promotes and removes
// members through clientv3: a learner is a coordkit observer.
func TestMembershipThroughTheClusterService(t *testing.T) {
	c := serve(t, 3)
	ctx := ctxT(t)
	cli := client(t, c.endpoints[0])
	peer := "127.0.0.1:1" // never started: added and removed only
	add, err := cli.MemberAddAsLearner(ctx, []string{"http://" + peer})
	if err != nil {
		t.Fatal(err)
	}
	if add.Member.Name != memberName(peer) || !add.Member.IsLearner || len(add.Members) != 4 || add.Header.Revision == 0 {
		t.Fatalf("member add: %+v", add)
	}
	if _, err := cli.MemberAdd(ctx, []string{"http://" + peer}); !errors.Is(err, rpctypes.ErrMemberExist) {
		t.Fatalf("adding the same address again: %v", err)
	}
	if _, err := cli.MemberAdd(ctx, []string{"http://127.0.0.1:5", "http://127.0.0.1:6"}); !errors.Is(err, rpctypes.ErrMemberBadURLs) {
		t.Fatalf("two peer URLs: %v", err)
	}
	if _, err := cli.MemberRemove(ctx, add.Member.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.MemberRemove(ctx, add.Member.ID); !errors.Is(err, rpctypes.ErrMemberNotFound) {
		t.Fatalf("removing it again: %v", err)
	}
	// A running observer, promoted through the API.
	i := c.JoinObserver()
	id := c.Node(i).ID()
	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	learners := 0
	for _, m := range ml.Members {
		if m.IsLearner {
			learners++
			if m.ID != id {
				t.Fatalf("learner %x, want the observer %x", m.ID, id)
			}
		}
	}
	if learners != 1 {
		t.Fatalf("%d learners listed, want 1", learners)
	}
	if _, err := cli.MemberPromote(ctx, id); err != nil {
		t.Fatal(err)
	}
	ml, _ = cli.MemberList(ctx)
	for _, m := range ml.Members {
		if m.IsLearner {
			t.Fatalf("still a learner after promotion: %+v", m)
		}
	}
	if _, err := cli.MemberUpdate(ctx, id, []string{"http://127.0.0.1:2"}); err == nil {
		t.Fatal("MemberUpdate answered")
	}
}

// TestSnapshotRestores: a snapshot streamed through the Maintenance
// service is a backup Node.Restore loads into a new cluster.
func TestSnapshotRestores(t *testing.T) {
	c := serve(t, 1)
	ctx := ctxT(t)
	cli := client(t, c.endpoints[0])
	for i := range 50 {
		if _, err := cli.Put(ctx, fmt.Sprintf("/snap/k%02d", i), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	fresh := coordtest.New(t, 1)
	res, err := fresh.Node(0).Restore(ctx, rc)
	if err != nil {
		t.Fatalf("restoring the snapshot: %v", err)
	}
	if res.Keys != 50 {
		t.Fatalf("restored %d keys, want 50", res.Keys)
	}
	g, err := fresh.Node(0).Get(ctx, "/snap/", coord.WithPrefix(), coord.WithCountOnly())
	if err != nil || g.Count != 50 {
		t.Fatalf("after restore: %+v %v", g, err)
	}
}
