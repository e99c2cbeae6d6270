package coordtest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"

	"github.com/coordkit/coordkit/internal/freeport"
)

// New starts the cluster again on other ports when a member's port was
// taken between being chosen and being bound.
func TestNewRetriesWhenAPortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	calls := 0
	pickAddrs = func(n int) ([]string, error) {
		calls++
		a, err := freeport.Addrs(n)
		if err == nil && calls == 1 {
			a[n-1] = taken.Addr().String()
		}
		return a, err
	}
	defer func() { pickAddrs = freeport.Addrs }()
	c := New(t, 2)
	if calls != 2 {
		t.Fatalf("addresses picked %d times, want 2", calls)
	}
	for i := 0; i < c.Size(); i++ {
		if a := c.Config(i).RaftAddress; a == taken.Addr().String() {
			t.Fatalf("member %d kept the taken address %s", i, a)
		}
	}
	if _, err := c.Node(0).Put(Context(t, 30*time.Second), "/k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}

// fakeTransport counts what reaches it.
type fakeTransport struct{ batches, chunks int }

func (f *fakeTransport) Create(config.NodeHostConfig, raftio.MessageHandler, raftio.ChunkHandler) raftio.ITransport {
	return f
}
func (f *fakeTransport) Validate(string) bool { return true }
func (f *fakeTransport) Name() string         { return "fake" }
func (f *fakeTransport) Start() error         { return nil }
func (f *fakeTransport) Close() error         { return nil }
func (f *fakeTransport) GetConnection(context.Context, string) (raftio.IConnection, error) {
	return fakeConn{f}, nil
}
func (f *fakeTransport) GetSnapshotConnection(context.Context, string) (raftio.ISnapshotConnection, error) {
	return fakeConn{f}, nil
}

type fakeConn struct{ f *fakeTransport }

func (c fakeConn) Close()                                 {}
func (c fakeConn) SendMessageBatch(pb.MessageBatch) error { c.f.batches++; return nil }
func (c fakeConn) SendChunk(pb.Chunk) error               { c.f.chunks++; return nil }

// Regression: a member that lost power sent one more acknowledgement, made
// on a sync that was ignored, which waited in a socket buffer while it was
// cut off and reached its leader once the cut healed; the leader then
// counted entries the reopened member did not have, and dragonboat panicked
// (invalid commitTo index 15907, lastIndex() 15904). Nothing a member sends
// after its power is off may reach a peer, on connections opened before or
// after; its next incarnation sends again.
func TestNothingSentAfterPowerOffIsDelivered(t *testing.T) {
	inner := &fakeTransport{}
	f := &filtered{nw: &network{}, inner: inner}
	tr := f.Create(config.NodeHostConfig{RaftAddress: "a"}, nil, nil)
	before, _ := tr.GetConnection(context.Background(), "b")
	snap, _ := tr.GetSnapshotConnection(context.Background(), "b")
	if err := before.SendMessageBatch(pb.MessageBatch{}); err != nil || inner.batches != 1 {
		t.Fatalf("powered on: err %v, %d batches delivered, want 1", err, inner.batches)
	}
	f.powerOff()
	after, _ := tr.GetConnection(context.Background(), "b")
	_ = before.SendMessageBatch(pb.MessageBatch{})
	_ = after.SendMessageBatch(pb.MessageBatch{})
	if err := snap.SendChunk(pb.Chunk{}); err == nil {
		t.Error("a snapshot chunk sent after power off did not fail")
	}
	if inner.batches != 1 || inner.chunks != 0 {
		t.Fatalf("after power off: %d batches, %d chunks delivered, want 1 and 0", inner.batches, inner.chunks)
	}
	again, _ := f.Create(config.NodeHostConfig{RaftAddress: "a"}, nil, nil).GetConnection(context.Background(), "b")
	if err := again.SendMessageBatch(pb.MessageBatch{}); err != nil || inner.batches != 2 {
		t.Fatalf("reopened: err %v, %d batches delivered, want 2", err, inner.batches)
	}
}
