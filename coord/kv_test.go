package coord_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/internal/proctest"
)

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	c := coordtest.New(t, 1, coordtest.WithConfig(func(cfg *coord.Config) {
		cfg.MaxKeyBytes = 16
		cfg.MaxValueBytes = 32
		cfg.MaxTxnOps = 3
	}))
	ctx := ctxT(t)
	n := c.Node(0)
	before := mustPut(t, n, "/in/ok", "x").Header.Revision
	long := strings.Repeat("k", 17)
	cases := []struct {
		name string
		do   func() error
		want error
	}{
		{"empty key put", func() error { _, err := n.Put(ctx, "", nil); return err }, coord.ErrEmptyKey},
		{"empty key get", func() error { _, err := n.Get(ctx, ""); return err }, coord.ErrEmptyKey},
		{"empty key delete", func() error { _, err := n.Delete(ctx, ""); return err }, coord.ErrEmptyKey},
		{"key too large", func() error { _, err := n.Put(ctx, long, nil); return err }, coord.ErrKeyTooLarge},
		{"key too large get", func() error { _, err := n.Get(ctx, long); return err }, coord.ErrKeyTooLarge},
		{"value too large", func() error { _, err := n.Put(ctx, "/in/v", make([]byte, 33)); return err }, coord.ErrValueTooLarge},
		{"unknown lease", func() error { _, err := n.Put(ctx, "/in/l", nil, coord.WithLease(12345)); return err }, coord.ErrLeaseNotFound},
		{"bad lease id", func() error { _, err := n.Put(ctx, "/in/l", nil, coord.WithLease(-1)); return err }, coord.ErrInvalidOption},
		{"option for another call", func() error { _, err := n.Put(ctx, "/in/x", nil, coord.WithPrefix()); return err }, coord.ErrInvalidOption},
		{"serializable on delete", func() error { _, err := n.Delete(ctx, "/in/x", coord.WithSerializable()); return err }, coord.ErrInvalidOption},
		{"prefix and range", func() error {
			_, err := n.Get(ctx, "/in/", coord.WithPrefix(), coord.WithRange("/in/z"))
			return err
		}, coord.ErrInvalidOption},
		{"range end before key", func() error { _, err := n.Get(ctx, "/in/b", coord.WithRange("/in/a")); return err }, coord.ErrInvalidOption},
		{"future revision", func() error { _, err := n.Get(ctx, "/in/ok", coord.WithRev(before+100)); return err }, coord.ErrFutureRevision},
		{"too many ops", func() error {
			_, err := n.Txn(ctx).Then(coord.OpPut("/in/1", nil), coord.OpPut("/in/2", nil), coord.OpPut("/in/3", nil), coord.OpPut("/in/4", nil)).Commit()
			return err
		}, coord.ErrTooManyOps},
		{"duplicate key in txn", func() error {
			_, err := n.Txn(ctx).Then(coord.OpPut("/in/d", []byte("1")), coord.OpPut("/in/d", []byte("2"))).Commit()
			return err
		}, coord.ErrDuplicateKey},
		{"bad compare op", func() error {
			_, err := n.Txn(ctx).If(coord.Compare(coord.Version("/in/ok"), "~", 1)).Commit()
			return err
		}, coord.ErrInvalidOption},
		{"bad compare type", func() error {
			_, err := n.Txn(ctx).If(coord.Compare(coord.Version("/in/ok"), "=", "one")).Commit()
			return err
		}, coord.ErrInvalidOption},
		{"txn with unknown lease", func() error {
			_, err := n.Txn(ctx).Then(coord.OpPut("/in/t1", nil), coord.OpPut("/in/t2", nil, coord.WithLease(777))).Commit()
			return err
		}, coord.ErrLeaseNotFound},
		{"ttl too small", func() error { _, err := n.Grant(ctx, time.Millisecond); return err }, coord.ErrInvalidTTL},
		{"ttl negative", func() error { _, err := n.Grant(ctx, -time.Second); return err }, coord.ErrInvalidTTL},
		{"revoke unknown", func() error { return n.Revoke(ctx, 424242) }, coord.ErrLeaseNotFound},
		{"keepalive unknown", func() error { _, err := n.KeepAliveOnce(ctx, 424242); return err }, coord.ErrLeaseNotFound},
		{"ttl unknown", func() error { _, err := n.TimeToLive(ctx, 424242); return err }, coord.ErrLeaseNotFound},
		{"compact future", func() error { _, err := n.Compact(ctx, 0, before+100); return err }, coord.ErrFutureRevision},
		{"compact bad shard", func() error { _, err := n.Compact(ctx, 5, 1); return err }, coord.ErrInvalidArgument},
		{"session bad ttl", func() error { _, err := n.NewSession(ctx, coord.WithTTL(0)); return err }, coord.ErrInvalidTTL},
	}
	for _, tc := range cases {
		err := tc.do()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	g, err := n.Get(ctx, "/in/", coord.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if g.Header.Revision != before || g.Count != 1 {
		t.Fatalf("bad input changed the store: revision %d (want %d), %d keys (want 1)", g.Header.Revision, before, g.Count)
	}
	// A watch with bad input reports the error and closes.
	w := n.Watch(ctx, "")
	if r := <-w; !errors.Is(r.Err(), coord.ErrEmptyKey) {
		t.Fatalf("watch empty key: %v", r.Err())
	}
	if _, ok := <-w; ok {
		t.Fatal("watch channel not closed after its error")
	}
}

func TestTxnCompareAndSwap(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	n := c.Node(0)
	r := mustPut(t, n, "/cas/x", "1")
	ok, err := n.Txn(ctx).If(coord.Compare(coord.ModRevision("/cas/x"), "=", r.Header.Revision)).
		Then(coord.OpPut("/cas/x", []byte("2")), coord.OpGet("/cas/x")).
		Else(coord.OpGet("/cas/x")).Commit()
	if err != nil || !ok.Succeeded {
		t.Fatalf("first CAS: %+v %v", ok, err)
	}
	if got := ok.Responses[1].Get.KVs[0]; string(got.Value) != "2" || got.ModRevision != ok.Header.Revision {
		t.Fatalf("read inside txn: %+v", got)
	}
	// The same CAS again fails: the revision moved.
	again, err := n.Txn(ctx).If(coord.Compare(coord.ModRevision("/cas/x"), "=", r.Header.Revision)).
		Then(coord.OpPut("/cas/x", []byte("3"))).Else(coord.OpGet("/cas/x")).Commit()
	if err != nil || again.Succeeded {
		t.Fatalf("stale CAS: %+v %v", again, err)
	}
	if string(again.Responses[0].Get.KVs[0].Value) != "2" {
		t.Fatal("Else branch did not read the current value")
	}
	// Create-if-absent.
	for i, want := range []bool{true, false} {
		r, err := n.Txn(ctx).If(coord.Compare(coord.CreateRevision("/cas/new"), "=", 0)).
			Then(coord.OpPut("/cas/new", []byte("v"))).Commit()
		if err != nil || r.Succeeded != want {
			t.Fatalf("create-if-absent %d: %+v %v", i, r, err)
		}
	}
}

// Put and Txn do not keep the caller's value: changing the slice after the
// call returns changes nothing stored, in a Put or in a Txn's put.
func TestValueNotRetained(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	n := c.Node(0)
	buf := []byte("before")
	if _, err := n.Put(ctx, "/own/put", buf); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Txn(ctx).Then(coord.OpPut("/own/txn", buf)).Commit(); err != nil {
		t.Fatal(err)
	}
	copy(buf, "AFTER!")
	for _, k := range []string{"/own/put", "/own/txn"} {
		r, err := n.Get(ctx, k)
		if err != nil || len(r.KVs) != 1 || string(r.KVs[0].Value) != "before" {
			t.Fatalf("%s: %+v %v", k, r, err)
		}
	}
}

func TestGetOptions(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	n := c.Node(0)
	for i, k := range []string{"/g/c", "/g/a", "/g/b", "/g/b"} {
		mustPut(t, n, k, fmt.Sprint(9-i))
	}
	g, err := n.Get(ctx, "/g/", coord.WithPrefix(), coord.WithLimit(2))
	if err != nil || len(g.KVs) != 2 || !g.More || g.Count != 3 || g.KVs[0].Key != "/g/a" {
		t.Fatalf("limit: %+v %v", g, err)
	}
	g, _ = n.Get(ctx, "/g/", coord.WithPrefix(), coord.WithSort(coord.SortByModRevision, coord.SortDescend))
	if g.KVs[0].Key != "/g/b" || g.KVs[2].Key != "/g/c" {
		t.Fatalf("sort by mod desc: %v %v %v", g.KVs[0].Key, g.KVs[1].Key, g.KVs[2].Key)
	}
	g, _ = n.Get(ctx, "/g/", coord.WithPrefix(), coord.WithCountOnly())
	if g.Count != 3 || len(g.KVs) != 0 {
		t.Fatalf("count only: %+v", g)
	}
	g, _ = n.Get(ctx, "/g/", coord.WithPrefix(), coord.WithKeysOnly())
	if len(g.KVs) != 3 || g.KVs[0].Value != nil {
		t.Fatalf("keys only: %+v", g.KVs[0])
	}
	if g.KVs[1].Version != 2 {
		t.Fatalf("/g/b version %d, want 2", g.KVs[1].Version)
	}
	old := g.KVs[1].CreateRevision
	g, _ = n.Get(ctx, "/g/b", coord.WithRev(old))
	if string(g.KVs[0].Value) != "7" {
		t.Fatalf("read at revision %d: %s", old, g.KVs[0].Value)
	}
	// The key created just before /g/b: a fair queue's predecessor query.
	all, _ := n.Get(ctx, "/g/", coord.WithPrefix())
	createOf := map[string]coord.Revision{}
	for _, kv := range all.KVs {
		createOf[kv.Key] = kv.CreateRevision
	}
	g, err = n.Get(ctx, "/g/", coord.WithPrefix(), coord.WithMaxCreateRev(createOf["/g/b"]-1),
		coord.WithSort(coord.SortByCreateRevision, coord.SortDescend), coord.WithLimit(1))
	if err != nil || len(g.KVs) != 1 || g.KVs[0].Key != "/g/a" || g.Count != 2 {
		t.Fatalf("predecessor of /g/b: %+v %v", g, err)
	}
	g, _ = n.Get(ctx, "/g/", coord.WithPrefix(), coord.WithMinCreateRev(createOf["/g/a"]), coord.WithCountOnly())
	if g.Count != 2 {
		t.Fatalf("keys created at or after /g/a: %d, want 2", g.Count)
	}
	if _, err := n.Get(ctx, "/g/", coord.WithPrefix(), coord.WithMaxCreateRev(0)); !errors.Is(err, coord.ErrInvalidOption) {
		t.Fatalf("WithMaxCreateRev(0): %v", err)
	}
	d, err := n.Delete(ctx, "/g/", coord.WithPrefix(), coord.WithPrevKV())
	if err != nil || d.Deleted != 3 || len(d.PrevKVs) != 3 {
		t.Fatalf("delete prefix: %+v %v", d, err)
	}
}

func TestList(t *testing.T) {
	c := coordtest.New(t, 1, coordtest.WithShards(4))
	ctx := ctxT(t)
	n := c.Node(0)
	for _, k := range []string{"/fs/a", "/fs/b/x", "/fs/b/y", "/fs/c/d/e", "/fs/d", "/other/z", "/top"} {
		mustPut(t, n, k, "v")
	}
	l, err := n.List(ctx, "/fs")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range l.Entries {
		got = append(got, e.Name)
		if e.Dir != strings.HasSuffix(e.Name, "/") || (e.KV == nil) != e.Dir {
			t.Fatalf("entry %+v", e)
		}
	}
	if want := "/fs/a /fs/b/ /fs/c/ /fs/d"; strings.Join(got, " ") != want {
		t.Fatalf("List(/fs) = %v, want %v", got, want)
	}
	// The top level spans shards: read from all, merged in order.
	l, err = n.List(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, e := range l.Entries {
		got = append(got, e.Name)
	}
	if want := "/fs/ /other/ /top"; strings.Join(got, " ") != want {
		t.Fatalf("List(/) = %v, want %v", got, want)
	}
}

func TestShardsAndCrossShard(t *testing.T) {
	c := coordtest.New(t, 3, coordtest.WithShards(4))
	ctx := ctxT(t)
	n := c.Node(0)
	// Find two top-level directories in different shards.
	a, b := "/dir0/", ""
	for i := 1; b == ""; i++ {
		d := fmt.Sprintf("/dir%d/", i)
		if n.ShardOf(d) != n.ShardOf(a) {
			b = d
		}
	}
	mustPut(t, n, a+"k", "1")
	mustPut(t, n, b+"k", "2")
	if _, err := n.Txn(ctx).Then(coord.OpPut(a+"x", nil), coord.OpPut(b+"x", nil)).Commit(); !errors.Is(err, coord.ErrCrossShard) {
		t.Fatalf("txn across shards: %v", err)
	}
	if _, err := n.Txn(ctx).If(coord.Compare(coord.Version(a+"k"), "=", 1)).Then(coord.OpPut(b+"x", nil)).Commit(); !errors.Is(err, coord.ErrCrossShard) {
		t.Fatalf("txn compare across shards: %v", err)
	}
	w := n.Watch(ctx, "/", coord.WithPrefix())
	if r := <-w; !errors.Is(r.Err(), coord.ErrCrossShard) {
		t.Fatalf("watch across shards: %v", r.Err())
	}
	g, err := n.Get(ctx, "/dir", coord.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if g.Header.Shard != coord.ShardAll || len(g.Shards) != 4 || len(g.KVs) != 2 || g.KVs[0].Key != a+"k" || g.KVs[1].Key != b+"k" {
		t.Fatalf("fan-out get: %+v", g)
	}
	if _, err := n.Get(ctx, "/dir", coord.WithPrefix(), coord.WithRev(1)); !errors.Is(err, coord.ErrCrossShard) {
		t.Fatalf("fan-out get at revision: %v", err)
	}
	// A lease homed in one shard, attached to keys in two: revoke removes both.
	l, err := n.Grant(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, c.Node(1), a+"leased", "x", coord.WithLease(l.ID))
	mustPut(t, c.Node(2), b+"leased", "y", coord.WithLease(l.ID))
	ttl, err := n.TimeToLive(ctx, l.ID, coord.WithAttachedKeys())
	if err != nil || len(ttl.Keys) != 2 {
		t.Fatalf("lease across shards: %+v %v", ttl, err)
	}
	if _, err := c.Node(2).KeepAliveOnce(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(1).Revoke(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	g, _ = n.Get(ctx, "/dir", coord.WithPrefix())
	if len(g.KVs) != 2 {
		t.Fatalf("after revoke %d keys remain, want 2", len(g.KVs))
	}
}

func TestWatchCompactedAndSlowConsumer(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	n := c.Node(0)
	first := mustPut(t, n, "/slow/k", "0").Header.Revision
	// A consumer that does not read while many writes land: apply goes on,
	// and the watcher catches up from history in order with no gap.
	w := n.Watch(ctx, "/slow/", coord.WithPrefix())
	const writes = 6000 // more than the hub queues for one watcher
	for i := 1; i <= writes; i++ {
		if _, err := n.Put(ctx, "/slow/k", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	evs := collect(t, w, writes, 30*time.Second)
	for i, e := range evs {
		if e.KV.ModRevision != first+coord.Revision(i)+1 || string(e.KV.Value) != fmt.Sprint(i+1) {
			t.Fatalf("event %d: rev %d value %s", i, e.KV.ModRevision, e.KV.Value)
		}
	}
	// A watch from a compacted revision fails with ErrCompacted.
	if _, err := n.Compact(ctx, 0, first+10); err != nil {
		t.Fatal(err)
	}
	r := <-n.Watch(ctx, "/slow/", coord.WithPrefix(), coord.WithRev(first))
	if !errors.Is(r.Err(), coord.ErrCompacted) || r.CompactRevision != first+10 {
		t.Fatalf("watch from compacted revision: %v (compact revision %d, want %d)", r.Err(), r.CompactRevision, first+10)
	}
	if _, err := n.Get(ctx, "/slow/k", coord.WithRev(first)); !errors.Is(err, coord.ErrCompacted) {
		t.Fatalf("get at compacted revision: %v", err)
	}
	// Each error says which revision is the oldest still available.
	var ce *coord.CompactedError
	for _, err := range []error{r.Err(), func() error { _, err := n.Get(ctx, "/slow/k", coord.WithRev(first)); return err }(),
		func() error { _, err := n.Compact(ctx, 0, first+5); return err }()} {
		if !errors.Is(err, coord.ErrCompacted) || !errors.As(err, &ce) || ce.Oldest != first+10 {
			t.Fatalf("below the compaction point: %v, want a *CompactedError with Oldest %d", err, first+10)
		}
	}
	// A lagging watcher that compaction overtakes ends with ErrCompacted.
	start := mustPut(t, n, "/slow/k", "x").Header.Revision
	lag := n.Watch(ctx, "/slow/", coord.WithPrefix(), coord.WithRev(start))
	for i := 0; i < maxPending()+100; i++ {
		mustPut(t, n, "/slow/k", "y")
	}
	st := statusOf(t, n)
	if _, err := n.Compact(ctx, 0, st.Shards[0].Revision); err != nil {
		t.Fatal(err)
	}
	var last coord.WatchResponse
	got := 0
	for r := range lag {
		got += len(r.Events)
		last = r
	}
	if !errors.Is(last.Err(), coord.ErrCompacted) || last.CompactRevision != st.Shards[0].Revision {
		t.Fatalf("lagging watcher ended with %v (compact rev %d) after %d events", last.Err(), last.CompactRevision, got)
	}
}

// maxPending mirrors the hub's per-watcher queue bound: a test writes more
// than this to force the history path.
func maxPending() int { return 4096 }

func TestWatchProgressNotify(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	n := c.Node(0)
	rev := mustPut(t, n, "/pn/a", "1").Header.Revision
	w := n.Watch(ctx, "/pn/b", coord.WithProgressNotify(100*time.Millisecond))
	mustPut(t, n, "/pn/a", "2") // not watched: moves the revision only
	coordtest.Eventually(t, 10*time.Second, func() bool {
		r := <-w
		return r.IsProgressNotify() && r.Header.Revision >= rev+1
	}, "no progress notification reached the new revision")
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		cfg   coord.Config
		field string
	}{
		{coord.Config{}, "DataDir"},
		{coord.Config{DataDir: dir, RaftAddress: "nope"}, "RaftAddress"},
		{coord.Config{DataDir: dir, Name: "a", InitialCluster: map[string]string{"b": "127.0.0.1:1"}}, "InitialCluster"},
		{coord.Config{DataDir: dir, Name: "a", RaftAddress: "127.0.0.1:1", InitialCluster: map[string]string{"a": "127.0.0.1:2"}}, "InitialCluster"},
		{coord.Config{DataDir: dir, Name: "a", RaftAddress: "127.0.0.1:1", InitialCluster: map[string]string{"a": "127.0.0.1:1", "b": "127.0.0.1:1"}}, "InitialCluster"},
		{coord.Config{DataDir: dir, Shards: -1}, "Shards"},
		{coord.Config{DataDir: dir, HeartbeatInterval: time.Microsecond}, "HeartbeatInterval"},
		{coord.Config{DataDir: dir, HeartbeatInterval: time.Second, ElectionTimeout: 2 * time.Second}, "ElectionTimeout"},
		{coord.Config{DataDir: dir, MaxRequestBytes: 10}, "MaxRequestBytes"},
	}
	for _, tc := range cases {
		_, err := coord.Open(context.Background(), tc.cfg)
		if !errors.Is(err, coord.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("Open(%+v) = %v, want ErrInvalidConfig naming %s", tc.cfg, err, tc.field)
		}
	}
}

func TestReopenChecksShardCountAndClosedCalls(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	ctx := ctxT(t)
	cfg := coord.Config{DataDir: dir, Shards: 2, RaftAddress: proctest.FreeAddr(t), Logger: quietLogger(),
		HeartbeatInterval: coordtest.HeartbeatInterval, ElectionTimeout: coordtest.ElectionTimeout}
	n, err := coord.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, n, "/re/k", "v")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := n.Get(ctx, "/re/k"); !errors.Is(err, coord.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, err := n.Put(ctx, "/re/k", nil); !errors.Is(err, coord.ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if r := <-n.Watch(ctx, "/re/k"); !errors.Is(r.Err(), coord.ErrClosed) {
		t.Fatalf("Watch after Close: %v", r.Err())
	}
	bad := cfg
	bad.Shards = 3
	if _, err := coord.Open(ctx, bad); !errors.Is(err, coord.ErrInvalidConfig) || !strings.Contains(err.Error(), "Shards") {
		t.Fatalf("reopen with another shard count: %v", err)
	}
	// Reopen with only the DataDir (and the address it was created with).
	n, err = coord.Open(ctx, coord.Config{DataDir: dir, Logger: quietLogger(),
		HeartbeatInterval: coordtest.HeartbeatInterval, ElectionTimeout: coordtest.ElectionTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	// Open returns once the replica replayed its log: a serializable read,
	// which never waits, already sees the data.
	if g, err := n.Get(ctx, "/re/k", coord.WithSerializable()); err != nil || g.Count != 1 {
		t.Fatalf("serializable read right after reopen: %+v %v", g, err)
	}
	if n.Shards() != 2 {
		t.Fatalf("reopened with %d shards, want 2", n.Shards())
	}
	g, err := n.Get(ctx, "/re/k")
	if err != nil || g.Count != 1 {
		t.Fatalf("data after reopen: %+v %v", g, err)
	}
}

func TestWatchEndsWithErrClosedOnClose(t *testing.T) {
	c := coordtest.New(t, 1)
	n := c.Node(0)
	w := n.Watch(context.Background(), "/wc/", coord.WithPrefix())
	mustPut(t, n, "/wc/a", "1")
	c.Stop(0)
	var last coord.WatchResponse
	for r := range w {
		last = r
	}
	if !errors.Is(last.Err(), coord.ErrClosed) {
		t.Fatalf("watch ended with %v, want ErrClosed", last.Err())
	}
}

// Watchers of single keys are indexed by key: each gets exactly its key's
// events (a revision writing several keys included), watchers of one key
// each get theirs, a removed one nothing, and a range watcher everything.
func TestWatchersOfManyKeysEachGetTheirOwnEvents(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	n := c.Node(0)
	const keys = 200
	key := func(i int) string { return fmt.Sprintf("/wk/%03d", i) }
	watches := make([]coord.WatchChan, keys)
	for i := range watches {
		watches[i] = n.Watch(ctx, key(i))
	}
	deletesOnly := n.Watch(ctx, key(0), coord.WithFilterPut())
	all := n.Watch(ctx, "/wk/", coord.WithPrefix())
	quiet := n.Watch(ctx, "/wk/none", coord.WithProgressNotify(50*time.Millisecond))
	watchers := func() int { return n.Metrics().Shards[0].Watchers }
	if got := watchers(); got != keys+3 {
		t.Fatalf("%d watchers counted, want %d", got, keys+3)
	}
	// A watcher of a watched key, and one of a range, come and go.
	gone, cancelGone := context.WithCancel(ctx)
	removed := n.Watch(gone, key(0))
	removedRange := n.Watch(gone, "/wk/0", coord.WithPrefix())
	cancelGone()
	coordtest.Eventually(t, 10*time.Second, func() bool { return watchers() == keys+3 },
		"cancelled watchers still counted: %d", watchers())

	var multi []coord.Op
	for i := 0; i < 10; i++ {
		multi = append(multi, coord.OpPut(key(i), []byte("multi")))
	}
	tr, err := n.Txn(ctx).Then(multi...).Commit()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < keys; i++ {
		mustPut(t, n, key(i), "one")
	}
	if _, err := n.Delete(ctx, key(0)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < keys; i++ {
		mustPut(t, n, key(i), "end")
	}

	next := func(w coord.WatchChan, what string) coord.Event {
		t.Helper()
		for {
			select {
			case r, ok := <-w:
				if !ok || r.Err() != nil {
					t.Fatalf("%s: watch ended: %v", what, r.Err())
				}
				if len(r.Events) == 0 {
					continue
				}
				if len(r.Events) != 1 {
					t.Fatalf("%s: %d events in one response, each revision here writes this key once", what, len(r.Events))
				}
				return r.Events[0]
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: no event", what)
			}
		}
	}
	for i, w := range watches {
		want := []string{"one", "end"}
		if i < 10 {
			want = append([]string{"multi"}, want...)
		}
		if i == 0 {
			want = []string{"multi", "one", "(delete)", "end"}
		}
		for j, v := range want {
			ev := next(w, key(i))
			got := string(ev.KV.Value)
			if ev.Type == coord.EventDelete {
				got = "(delete)"
			}
			if ev.KV.Key != key(i) || got != v {
				t.Fatalf("watcher of %s, event %d: %s %q, want %q", key(i), j, ev.KV.Key, got, v)
			}
			if v == "multi" && ev.KV.ModRevision != tr.Header.Revision {
				t.Fatalf("watcher of %s: the Txn's event at revision %d, want %d", key(i), ev.KV.ModRevision, tr.Header.Revision)
			}
		}
	}
	if ev := next(deletesOnly, "deletes only"); ev.Type != coord.EventDelete || ev.KV.Key != key(0) {
		t.Fatalf("deletes-only watcher got %+v", ev)
	}
	for _, w := range []coord.WatchChan{removed, removedRange} {
		for r := range w {
			if len(r.Events) > 0 {
				t.Fatalf("a cancelled watcher got %d events", len(r.Events))
			}
		}
	}
	count := 0
	for count < 10+keys+1+keys {
		select {
		case r := <-all:
			if r.Err() != nil {
				t.Fatal(r.Err())
			}
			count += len(r.Events)
		case <-time.After(10 * time.Second):
			t.Fatalf("prefix watcher: %d events, want %d", count, 10+keys+1+keys)
		}
	}
	last, err := n.Get(ctx, key(keys-1))
	if err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 10*time.Second, func() bool {
		r := <-quiet
		if len(r.Events) > 0 {
			t.Fatalf("watcher of an unwritten key got %d events", len(r.Events))
		}
		return r.IsProgressNotify() && r.Header.Revision >= last.KVs[0].ModRevision
	}, "the unwritten key's watcher never heard of the last revision")
}
