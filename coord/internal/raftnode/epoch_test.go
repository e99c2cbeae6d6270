package raftnode

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/raftio"
)

// A request waiting for its outcome ends with errLeaderChanged, a timeout
// to every caller (so it is made again at once, under the same request ID),
// as soon as this member learns of a new leader of its shard; a repeated
// report of the same leader, or of none, does not end it.
func TestLeaderChangeEndsWaitingRequests(t *testing.T) {
	led := 0
	n := &Host{cfg: Config{ReplicaID: 1, Leading: func(int) { led++ }}}
	for i := range 2 {
		s := &Shard{h: n, Index: i, id: uint64(i + 1)}
		epoch := make(chan struct{})
		s.leaderEpoch.Store(&epoch)
		n.shards = append(n.shards, s)
	}
	self := new(atomic.Pointer[Host])
	self.Store(n)
	l := leaderListener{self}

	ended := func(shard int) bool {
		select {
		case <-n.shards[shard].epoch():
			return true
		default:
			return false
		}
	}
	l.LeaderUpdated(raftio.LeaderInfo{ShardID: 1, LeaderID: 2, Term: 1})
	e := n.shards[0].epoch() // the epoch of leader 2
	for _, info := range []raftio.LeaderInfo{{ShardID: 1, LeaderID: 2, Term: 1}, {ShardID: 2, LeaderID: 3, Term: 1}} {
		l.LeaderUpdated(info)
	}
	if ended(0) || n.shards[0].epoch() != e {
		t.Fatal("the same leader reported again ended shard 1's requests")
	}
	l.LeaderUpdated(raftio.LeaderInfo{ShardID: 1, LeaderID: 0, Term: 2}) // an election: no leader yet
	if ended(0) {
		t.Fatal("an election without a leader yet ended the requests")
	}
	// Waiting for an outcome that never comes (a request the old leader lost).
	rs := &dragonboat.RequestState{}
	got := make(chan error, 1)
	go func() {
		_, err := awaitRequest(context.Background(), rs, e)
		got <- err
	}()
	l.LeaderUpdated(raftio.LeaderInfo{ShardID: 1, LeaderID: 3, Term: 2})
	select {
	case err := <-got:
		if !errors.Is(err, errLeaderChanged) || !errors.Is(err, dragonboat.ErrTimeout) {
			t.Fatalf("awaitRequest after a leader change: %v, want errLeaderChanged, a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("awaitRequest still waiting 10 s after the leader changed")
	}
	if n.shards[0].epoch() == e {
		t.Fatal("no new epoch after the leader changed")
	}
	if got := n.shards[0].LeaderChanges(); got != 2 {
		t.Fatalf("%d leader changes counted, want 2 (to 2, then to 3)", got)
	}
	// Out-of-range shards are ignored.
	l.LeaderUpdated(raftio.LeaderInfo{ShardID: 9, LeaderID: 1, Term: 2})
	if led != 0 {
		t.Fatalf("Leading called %d times while this member led nothing", led)
	}
	l.LeaderUpdated(raftio.LeaderInfo{ShardID: 2, LeaderID: 1, Term: 3})
	if led != 1 {
		t.Fatalf("Leading called %d times after this member took shard 2, want 1", led)
	}
}
