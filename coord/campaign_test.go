package coord_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/internal/hooks"
	"github.com/coordkit/coordkit/internal/proctest"
)

// countKicks makes the member opened with cfg count, in kicks, the
// TimeoutNow messages it hands itself (sent from and to its own replica,
// without a term): the kicks of a sole voter. A leader's handover comes from
// the leader and carries its term.
func countKicks(cfg *coord.Config, kicks *atomic.Int64) {
	hooks.WrapTransport(cfg, func(inner config.TransportFactory) config.TransportFactory {
		return kickCounter{inner, kicks}
	})
}

type kickCounter struct {
	config.TransportFactory
	kicks *atomic.Int64
}

func (k kickCounter) Create(nhc config.NodeHostConfig, h raftio.MessageHandler, ch raftio.ChunkHandler) raftio.ITransport {
	return k.TransportFactory.Create(nhc, func(b pb.MessageBatch) {
		for _, m := range b.Requests {
			if m.Type == pb.TimeoutNow && m.From == m.To && m.Term == 0 {
				k.kicks.Add(1)
			}
		}
		h(b)
	}, ch)
}

// A single member, new or restarted, campaigns as soon as its log is
// replayed: with a 10s election timeout, Raft alone would elect no leader
// for 10 to 20 seconds, and the write below could not be acknowledged.
func TestSoleVoterCampaignsWithoutWaitingOutItsElectionTimeout(t *testing.T) {
	var kicks atomic.Int64
	cfg := coord.Config{
		DataDir: t.TempDir(), RaftAddress: proctest.FreeAddr(t), Shards: 2,
		ElectionTimeout: 10 * time.Second, Logger: quietLogger(),
	}
	countKicks(&cfg, &kicks)
	for _, round := range []string{"new", "restarted"} {
		n, err := coord.Open(ctxT(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		for shard := 0; shard < n.Shards(); shard++ {
			key := keyIn(n, shard)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err := n.Put(ctx, key, []byte(round))
			cancel()
			if err != nil {
				n.Close()
				t.Fatalf("%s member: write to shard %d: %v", round, shard, err)
			}
		}
		n.Close()
	}
	if kicks.Load() == 0 {
		t.Fatal("no member kicked itself: leaders came from elsewhere")
	}
}

// keyIn returns a key that shard holds.
func keyIn(n *coord.Node, shard int) string {
	for i := 0; ; i++ {
		if k := fmt.Sprintf("/k%d", i); n.ShardOf(k) == shard {
			return k
		}
	}
}

// Members of a shard with several voters leave elections to Raft's election
// timeout, when they start together and when they restart: a member that
// campaigned at once would skip pre-vote and could unseat a leader.
func TestVotersOfASharedShardDoNotKickThemselves(t *testing.T) {
	var kicks atomic.Int64
	c := coordtest.New(t, 3, coordtest.WithShards(2), coordtest.WithConfig(func(cfg *coord.Config) {
		countKicks(cfg, &kicks)
	}))
	mustPut(t, c.Node(0), "/a", "1")
	c.Close()
	for i := 0; i < c.Size(); i++ {
		c.Restart(i)
	}
	c.WaitReady()
	mustPut(t, c.Node(1), "/a", "2")
	c.Close() // waits for every member's background work, kicks included
	if k := kicks.Load(); k != 0 {
		t.Fatalf("members of a 3-voter cluster kicked themselves %d times", k)
	}
}
