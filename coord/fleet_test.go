package coord_test

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/internal/proctest"
)

// A fleet of observers joins the way a fleet does: all at once, each asking
// the JoinSeeds to admit it, with no operator calling AddMember. Every
// observer's watch then sees every write of a burst exactly once and in
// revision order, and an observer that dies is removed by the leader's
// reaper after the grace period while the rest of the fleet stays.
func TestFleetJoinWatchAndReap(t *testing.T) {
	const (
		observers = 10
		writers   = 4
		perWriter = 50 // a burst of writers*perWriter puts
		// Short, so that the reaper acts within the test.
		grace  = 2 * time.Second
		prefix = "/fleet/"
	)
	c, seeds := seededCluster(t, grace)
	ctx := coordtest.Context(t, time.Minute)

	// Join: every observer opens at once. Each has one seed, a different
	// one in turn, as a fleet behind a load balancer would, so admissions
	// run concurrently on all three voters: membership changes proposed
	// from followers while another is pending are dropped by the leader
	// without a word, and must be retried, not waited out.
	start := time.Now()
	// The observers' warnings: a joiner whose seed did not admit it says
	// so before it asks again.
	var warnings proctest.Buffer
	warn := slog.New(slog.NewTextHandler(&warnings, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nodes := make([]*coord.Node, observers)
	names := make([]string, observers)
	errs := make([]error, observers)
	var wg sync.WaitGroup
	for i := range nodes {
		names[i] = fmt.Sprintf("fleet-%d", i)
		cfg := coord.Config{Name: names[i], DataDir: t.TempDir(), RaftAddress: proctest.FreeAddr(t),
			ClusterToken: c.Config(0).ClusterToken, ClusterSecret: coordtest.Secret, Join: true, Observer: true,
			JoinSeeds:         []string{seeds[i%len(seeds)]},
			HeartbeatInterval: coordtest.HeartbeatInterval, ElectionTimeout: coordtest.ElectionTimeout,
			ObserverGracePeriod: grace, Logger: warn}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			n, err := coord.Open(ctx, cfg)
			if err != nil {
				errs[i] = fmt.Errorf("open %s: %w", names[i], err)
				return
			}
			nodes[i] = n
			if err := n.Ready(ctx); err != nil {
				errs[i] = fmt.Errorf("%s not ready: %w", names[i], err)
			}
		}(i)
	}
	wg.Wait()
	for _, n := range nodes {
		if n != nil {
			t.Cleanup(func() { n.Close() })
		}
	}
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, name := range names {
		if m, ok := memberNamed(t, c.Node(0), name); !ok || m.Voter || !m.Reachable {
			t.Fatalf("%s as listed after joining: %+v (found %v), want a reachable observer", name, m, ok)
		}
	}
	// Every seed admitted every joiner that asked it the first time: none
	// had its request time out behind the others'.
	if w := warnings.String(); strings.Contains(w, "asking again") {
		t.Fatalf("a joiner had to ask its seed again:\n%s", w)
	}
	t.Logf("%d observers joined and ready in %v", observers, time.Since(start))

	// Watch, from before the burst: nothing was written under the prefix
	// yet, so each watch's events are exactly the burst's.
	watches := make([]coord.WatchChan, observers)
	for i, n := range nodes {
		watches[i] = n.Watch(ctx, prefix, coord.WithPrefix())
	}

	// Burst: concurrent writers, spread over the voters. The revisions the
	// puts return are what every watch must deliver.
	start = time.Now()
	keyAt := map[coord.Revision]string{}
	var mu sync.Mutex
	burstErrs := make([]error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for j := 0; j < perWriter; j++ {
				key := fmt.Sprintf("%sw%d/%03d", prefix, w, j)
				r, err := c.Node((w+j)%c.Size()).Put(ctx, key, []byte("v"))
				if err != nil {
					burstErrs[w] = fmt.Errorf("put %s: %w", key, err)
					return
				}
				mu.Lock()
				keyAt[r.Header.Revision] = key
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	for _, err := range burstErrs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A write after the burst closes each watch's expected stream, so that
	// a repeat of the burst's last event shows too: it would come before
	// this one.
	end := mustPut(t, c.Node(0), prefix+"end", "v").Header.Revision
	keyAt[end] = prefix + "end"
	want := make([]coord.Revision, 0, len(keyAt))
	for rev := range keyAt {
		want = append(want, rev)
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	if len(want) != writers*perWriter+1 {
		t.Fatalf("%d distinct revisions for %d puts", len(want), writers*perWriter+1)
	}
	t.Logf("burst of %d puts in %v", writers*perWriter, time.Since(start))

	// Delivery: one deadline for the whole fleet. Watches are read one
	// after another, so most of them fall behind their buffer meanwhile
	// and must catch up from history without a gap.
	deadline := time.Now().Add(20 * time.Second)
	for i, w := range watches {
		ok := t.Run(names[i], func(t *testing.T) {
			evs := collect(t, w, len(want), time.Until(deadline))
			if len(evs) != len(want) {
				t.Fatalf("%d events, want %d", len(evs), len(want))
			}
			for j, e := range evs {
				if e.Type != coord.EventPut || e.KV.ModRevision != want[j] || e.KV.Key != keyAt[want[j]] {
					t.Fatalf("event %d = %v %s at revision %d, want a put of %s at %d",
						j, e.Type, e.KV.Key, e.KV.ModRevision, keyAt[want[j]], want[j])
				}
			}
		})
		if !ok {
			t.FailNow()
		}
	}
	t.Logf("every observer saw all %d events in %v", len(want), time.Since(start))

	// Reap: the first observer dies. Its Close is as good as a crash here:
	// Close removes no member, so the cluster learns of the departure only
	// as a crash would tell it, by the observer's silence, which is all
	// the reaper looks at.
	start = time.Now()
	nodes[0].Close()
	coordtest.Eventually(t, 20*time.Second, func() bool {
		_, ok := memberNamed(t, c.Node(0), names[0])
		return !ok
	}, "dead observer %s was not removed after the grace period %v", names[0], grace)
	t.Logf("dead observer removed %v after it closed (grace %v)", time.Since(start), grace)
	if ticks := c.Node(c.WaitLeader(0)).Metrics().ReaperSeconds.Count; ticks == 0 {
		t.Fatal("the leader of shard 0 counted no reaper pass")
	}
	// Idle observers got thinned heartbeats, and stayed reachable (below);
	// voters got every heartbeat.
	leader := c.WaitLeader(0)
	voterAddrs := map[string]bool{}
	for i := 0; i < c.Size(); i++ {
		voterAddrs[c.Config(i).RaftAddress] = true
	}
	var toObservers uint64
	for _, p := range c.Node(leader).Metrics().Transport.Peers {
		if voterAddrs[p.Address] && p.ThinnedHeartbeats != 0 {
			t.Fatalf("the leader thinned %d heartbeats to voter %s", p.ThinnedHeartbeats, p.Address)
		}
		if !voterAddrs[p.Address] {
			toObservers += p.ThinnedHeartbeats
		}
	}
	if toObservers == 0 {
		t.Fatal("the leader thinned no heartbeat to an idle observer")
	}
	for _, name := range names[1:] {
		if m, ok := memberNamed(t, c.Node(1), name); !ok || m.Voter || !m.Reachable {
			t.Fatalf("%s after the reaper ran: %+v (found %v), want it still a reachable observer", name, m, ok)
		}
	}
	// The survivors still follow the cluster.
	after := mustPut(t, c.Node(2), prefix+"after", "v").Header.Revision
	for i, w := range watches[1:] {
		if evs := collect(t, w, 1, 10*time.Second); len(evs) != 1 || evs[0].KV.ModRevision != after {
			t.Fatalf("%s after the reaper ran: events %+v, want the put at %d", names[i+1], evs, after)
		}
	}
}
