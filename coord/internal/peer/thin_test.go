package peer

import (
	"testing"
	"time"

	pb "github.com/lni/dragonboat/v4/raftpb"
)

// TestHeartbeatsToObserversAreThinned: a heartbeat to an observer goes out
// when it is the first, carries a new term or commit index, or a ReadIndex
// context, or when ObserverHeartbeatEvery passed since the last one sent;
// other messages, and heartbeats to voters, always go out.
func TestHeartbeatsToObserversAreThinned(t *testing.T) {
	const every = 50 * time.Millisecond
	tr := &Transport{opts: Options{
		Observer:               func(shard, replica uint64) bool { return replica >= 100 },
		ObserverHeartbeatEvery: every,
	}}
	m := &msgConn{t: tr, beats: map[beatKey]beat{}}
	hb := func(to, term, commit uint64) pb.Message {
		return pb.Message{Type: pb.Heartbeat, ShardID: 1, To: to, Term: term, Commit: commit}
	}
	send := func(ms ...pb.Message) []pb.Message {
		b := pb.MessageBatch{Requests: append([]pb.Message(nil), ms...)}
		orig := append([]pb.Message(nil), b.Requests...)
		in := b.Requests
		n := m.thinHeartbeats(&b)
		if n != len(ms)-len(b.Requests) {
			t.Fatalf("thinned %d, but %d of %d messages left", n, len(b.Requests), len(ms))
		}
		for i := range in { // the caller's slice is left as it was
			if in[i].Type != orig[i].Type || in[i].To != orig[i].To {
				t.Fatalf("the batch's own slice was modified")
			}
		}
		return b.Requests
	}
	if got := send(hb(100, 1, 5), hb(2, 1, 5)); len(got) != 2 {
		t.Fatalf("first heartbeats: %d sent, want 2", len(got))
	}
	got := send(hb(100, 1, 5), hb(2, 1, 5), pb.Message{Type: pb.Replicate, ShardID: 1, To: 100})
	if len(got) != 2 || got[0].To != 2 || got[1].Type != pb.Replicate {
		t.Fatalf("repeated heartbeat: sent %v, want the voter's heartbeat and the Replicate", got)
	}
	if got := send(hb(100, 1, 6)); len(got) != 1 {
		t.Fatal("a heartbeat with a new commit index was left out")
	}
	if got := send(hb(100, 2, 6)); len(got) != 1 {
		t.Fatal("a heartbeat with a new term was left out")
	}
	withCtx := hb(100, 2, 6)
	withCtx.Hint = 9
	if got := send(withCtx); len(got) != 1 {
		t.Fatal("a heartbeat with a ReadIndex context was left out")
	}
	if got := send(hb(101, 2, 6)); len(got) != 1 {
		t.Fatal("the first heartbeat to another observer was left out")
	}
	if got := send(hb(100, 2, 6)); len(got) != 0 {
		t.Fatal("a heartbeat with nothing new was sent")
	}
	time.Sleep(every)
	if got := send(hb(100, 2, 6)); len(got) != 1 {
		t.Fatalf("no heartbeat after %v", every)
	}
}
