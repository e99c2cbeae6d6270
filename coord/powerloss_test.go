package coord_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/internal/hooks"
)

// ackLog records the puts acknowledged to writers: each key is written
// once, with its own value.
type ackLog struct {
	mu    sync.Mutex
	at    map[string]time.Time // key -> when its put was acknowledged here
	val   map[string]string
	round int // of powerLossRound, part of every key
}

// write puts new keys through the running members in turn until stop.
func (l *ackLog) write(c *coordtest.Cluster, writer int, stop <-chan struct{}) {
	l.mu.Lock()
	round := l.round
	l.mu.Unlock()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		n := c.Node(i % c.Size())
		if n == nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		key, val := fmt.Sprintf("/pl/r%d-w%d-%d", round, writer, i), fmt.Sprintf("v%d-%d-%d", round, writer, i)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := n.Put(ctx, key, []byte(val))
		cancel()
		if err == nil {
			l.mu.Lock()
			l.at[key], l.val[key] = time.Now(), val
			l.mu.Unlock()
		}
	}
}

// writers starts 3 writers (write) on c; the returned func stops them and
// waits for them.
func (l *ackLog) writers(c *coordtest.Cluster) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); l.write(c, w, done) }()
	}
	return func() { close(done); wg.Wait() }
}

// count returns how many puts were acknowledged.
func (l *ackLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.at)
}

// forgetAfter drops the writes acknowledged at or after cut: lostBefore
// of a later round must not count them.
func (l *ackLog) forgetAfter(cut time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, at := range l.at {
		if !at.Before(cut) {
			delete(l.at, k)
			delete(l.val, k)
		}
	}
}

// lostBefore returns the keys acknowledged before cut that a linearizable
// read through n does not return with their value.
func (l *ackLog) lostBefore(t *testing.T, n *coord.Node, cut time.Time) (lost []string, checked int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := n.Get(ctx, "/pl/", coord.WithPrefix())
	if err != nil {
		t.Fatalf("reading back: %v", err)
	}
	have := map[string]string{}
	for _, kv := range r.KVs {
		have[kv.Key] = string(kv.Value)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, at := range l.at {
		if !at.Before(cut) {
			continue
		}
		checked++
		if have[k] != l.val[k] {
			lost = append(lost, k)
		}
	}
	return lost, checked
}

// powerLossRound runs writers against c, cuts the power of members while
// they write, restarts them, and returns what was acknowledged before the
// cut and is gone.
func powerLossRound(t *testing.T, c *coordtest.Cluster, log *ackLog, members ...int) (lost []string, checked int) {
	t.Helper()
	log.mu.Lock()
	log.round++
	log.mu.Unlock()
	stop := log.writers(c)
	time.Sleep(500 * time.Millisecond)
	cut := c.PowerLoss(members...)
	time.Sleep(200 * time.Millisecond)
	stop()
	// A write acknowledged after the cut rested on a sync that was
	// ignored: it may be lost, in this round and in every later one.
	log.forgetAfter(cut)
	for _, i := range members {
		c.Restart(i)
	}
	c.WaitReady()
	return log.lostBefore(t, c.Node(members[0]), cut)
}

// A member that loses power loses what it had not synced, and nothing it
// acknowledged: a follower, the leader, and all three members at once
// lose power under writes, and every put acknowledged before the failure
// is read back, through a restarted member.
func TestPowerLossKeepsAcknowledgedWrites(t *testing.T) {
	c := coordtest.New(t, 3, coordtest.WithPowerLoss())
	log := &ackLog{at: map[string]time.Time{}, val: map[string]string{}}
	leader := c.WaitLeader(0)
	for _, round := range []struct {
		name    string
		members []int
	}{
		{"follower", []int{(leader + 1) % 3}},
		{"leader", []int{leader}},
		{"all", []int{0, 1, 2}},
	} {
		if round.name == "leader" {
			round.members = []int{c.WaitLeader(0)}
		}
		lost, checked := powerLossRound(t, c, log, round.members...)
		if checked == 0 {
			t.Fatalf("%s: no write was acknowledged before the power failed", round.name)
		}
		if len(lost) > 0 {
			t.Fatalf("%s lost power: %d of %d acknowledged writes are gone, e.g. %s", round.name, len(lost), checked, lost[0])
		}
		t.Logf("%s lost power: all %d writes acknowledged before it are there", round.name, checked)
	}
}

// A member alone in its cluster that loses power keeps every write it
// acknowledged before the failure, twice over.
func TestPowerLossOfASingleMemberKeepsAcknowledgedWrites(t *testing.T) {
	c := coordtest.New(t, 1, coordtest.WithPowerLoss())
	log := &ackLog{at: map[string]time.Time{}, val: map[string]string{}}
	for round := range 2 {
		lost, checked := powerLossRound(t, c, log, 0)
		if checked == 0 {
			t.Fatalf("round %d: no write was acknowledged before the power failed", round)
		}
		if len(lost) > 0 {
			t.Fatalf("round %d: %d of %d acknowledged writes are gone, e.g. %s", round, len(lost), checked, lost[0])
		}
		t.Logf("round %d: all %d writes acknowledged before the failure are there", round, checked)
	}
}

// The check catches members that acknowledge writes before they are
// durable: with their syncs made to do nothing, the members that lose
// power together lose acknowledged writes, and the check says so.
func TestPowerLossCheckCatchesAckBeforeSync(t *testing.T) {
	hooks.AckBeforeSync.Store(true)
	c := coordtest.New(t, 3, coordtest.WithPowerLoss())
	hooks.AckBeforeSync.Store(false)
	log := &ackLog{at: map[string]time.Time{}, val: map[string]string{}}
	lost, checked := powerLossRound(t, c, log, 0, 1, 2)
	if checked == 0 {
		t.Fatal("no write was acknowledged before the power failed")
	}
	if len(lost) == 0 {
		t.Fatalf("all %d writes acknowledged before the power failed are there, though no member synced", checked)
	}
	t.Logf("the check caught it: %d of %d acknowledged writes are gone", len(lost), checked)
}

// Leases and sessions across power losses behave as documented: a session
// on a member that keeps power lives on through a follower's power loss,
// its key in place throughout; after all members lose power, a lease's
// countdown starts again at its full TTL under the new leader (its key is
// there once the cluster is back, not before TTL has passed since the
// restart), and it expires one TTL later when nothing keeps it alive. A
// session of a member that lost power ends with ErrClosed, and its key goes
// with its lease.
func TestLeasesAndSessionsAcrossPowerLoss(t *testing.T) {
	c := coordtest.New(t, 3, coordtest.WithPowerLoss())
	leader := c.WaitLeader(0)
	ttl := 2 * time.Second
	ctx := coordtest.Context(t, time.Minute)
	n := c.Node(leader)
	s, err := n.NewSession(ctx, coord.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Put(ctx, "/s/k", []byte("v"), coord.WithLease(s.Lease())); err != nil {
		t.Fatal(err)
	}
	present := func(n *coord.Node, key string) bool {
		t.Helper()
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := n.Get(rctx, key)
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		return len(r.KVs) == 1
	}

	// A follower loses power: the session on the leader's member lives on.
	follower := (leader + 1) % 3
	c.PowerLoss(follower)
	until := time.Now().Add(ttl + time.Second)
	restarted := false
	for time.Now().Before(until) {
		if !restarted && time.Until(until) < ttl {
			c.Restart(follower)
			restarted = true
		}
		if !present(n, "/s/k") || s.Err() != nil {
			t.Fatalf("the session's key is gone (session: %v) while a follower lost power", s.Err())
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.WaitReady()

	// Every member loses power.
	owner := c.WaitLeader(0)
	g, err := c.Node(owner).Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Node(owner).Put(ctx, "/l/k", []byte("v"), coord.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	s2, err := c.Node(owner).NewSession(ctx, coord.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Node(owner).Put(ctx, "/s/k2", []byte("v"), coord.WithLease(s2.Lease())); err != nil {
		t.Fatal(err)
	}
	c.PowerLoss(0, 1, 2)
	select {
	case <-s2.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the session of a member that lost power did not end")
	}
	if !errors.Is(s2.Err(), coord.ErrClosed) {
		t.Fatalf("session of a member that lost power: %v, want ErrClosed", s2.Err())
	}
	time.Sleep(ttl) // longer than the TTL, with no member up
	back := time.Now()
	for i := range 3 {
		c.Restart(i)
	}
	c.WaitReady()
	m := c.Node(c.WaitLeader(0))
	if time.Since(back) >= ttl {
		t.Logf("the cluster took %v to come back, longer than the TTL: the lease's early expiry is not checked", time.Since(back))
	} else if !present(m, "/l/k") {
		t.Fatalf("the lease expired %v after the restart, before its TTL %v, though its countdown starts again under a new leader", time.Since(back), ttl)
	}
	deadline := time.Now().Add(ttl + 3*coordtest.ElectionTimeout + 2*time.Second)
	for present(m, "/l/k") || present(m, "/s/k2") || present(m, "/s/k") {
		if time.Now().After(deadline) {
			t.Fatalf("a lease nothing keeps alive still holds its key %v after the restart (TTL %v)", time.Since(back), ttl)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the leases expired %v after the restart (TTL %v)", time.Since(back), ttl)
	if !errors.Is(s.Err(), coord.ErrClosed) {
		t.Fatalf("first session, whose member lost power in the end: %v, want ErrClosed", s.Err())
	}
}
