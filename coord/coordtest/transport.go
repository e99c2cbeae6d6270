package coordtest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

// network is an in-memory peer network the harness can cut: messages to or
// from an isolated member are dropped, as by a partition.
type network struct {
	mu       sync.RWMutex
	isolated map[string]bool          // by raft address
	deaf     map[string]bool          // receives nothing, still sends; by raft address
	delay    map[string]time.Duration // inbound delay, by raft address
	byID     map[uint64]string        // replica ID -> raft address, for snapshot chunks
}

func (nw *network) delayOf(addr string) time.Duration {
	nw.mu.RLock()
	defer nw.mu.RUnlock()
	return nw.delay[addr]
}

func (nw *network) setDelay(addr string, d time.Duration) {
	nw.mu.Lock()
	nw.delay[addr] = d
	nw.mu.Unlock()
}

func (nw *network) blocked(from, to string) bool {
	nw.mu.RLock()
	defer nw.mu.RUnlock()
	return nw.isolated[from] || nw.isolated[to] || nw.deaf[to]
}

func (nw *network) blockedID(from uint64, to string) bool {
	nw.mu.RLock()
	addr := nw.byID[from]
	nw.mu.RUnlock()
	return nw.blocked(addr, to)
}

func (nw *network) set(addr string, isolated bool) {
	nw.mu.Lock()
	nw.isolated[addr] = isolated
	nw.deaf[addr] = false
	nw.mu.Unlock()
}

func (nw *network) setDeaf(addr string) {
	nw.mu.Lock()
	nw.deaf[addr] = true
	nw.mu.Unlock()
}

// filtered wraps a member's own transport (coordkit's TCP peer transport)
// with the network's filter on the receiving side: the members still talk
// over loopback TCP, and the harness drops or delays what they receive.
type filtered struct {
	nw    *network
	inner config.TransportFactory
	on    atomic.Pointer[atomic.Bool] // of the transport created last
}

func (f *filtered) Create(nhc config.NodeHostConfig, h raftio.MessageHandler, ch raftio.ChunkHandler) raftio.ITransport {
	self := nhc.RaftAddress
	mh := func(b pb.MessageBatch) {
		if f.nw.blocked(b.SourceAddress, self) {
			return
		}
		if d := f.nw.delayOf(self); d > 0 {
			time.Sleep(d) // a slow member: everything it receives is late
		}
		h(b)
	}
	chh := func(c pb.Chunk) bool {
		if f.nw.blockedID(c.From, self) {
			return false
		}
		return ch(c)
	}
	on := new(atomic.Bool)
	on.Store(true)
	f.on.Store(on)
	return &powered{ITransport: f.inner.Create(nhc, mh, chh), on: on}
}

// powerOff makes the member of the transport created last send nothing
// more, ever, as in a power failure. Cutting the member off the network is
// not enough: a message it sends while cut off, resting on a sync that was
// ignored, can wait in a socket buffer and reach a peer once the network
// heals.
func (f *filtered) powerOff() {
	if on := f.on.Load(); on != nil {
		on.Store(false)
	}
}

// powered drops everything its member sends once its power is off.
type powered struct {
	raftio.ITransport
	on *atomic.Bool
}

func (p *powered) GetConnection(ctx context.Context, target string) (raftio.IConnection, error) {
	c, err := p.ITransport.GetConnection(ctx, target)
	if err != nil {
		return nil, err
	}
	return &poweredConn{IConnection: c, on: p.on}, nil
}

func (p *powered) GetSnapshotConnection(ctx context.Context, target string) (raftio.ISnapshotConnection, error) {
	c, err := p.ITransport.GetSnapshotConnection(ctx, target)
	if err != nil {
		return nil, err
	}
	return &poweredSnapConn{ISnapshotConnection: c, on: p.on}, nil
}

type poweredConn struct {
	raftio.IConnection
	on *atomic.Bool
}

func (c *poweredConn) SendMessageBatch(b pb.MessageBatch) error {
	if !c.on.Load() {
		return nil // lost on the way
	}
	return c.IConnection.SendMessageBatch(b)
}

type poweredSnapConn struct {
	raftio.ISnapshotConnection
	on *atomic.Bool
}

func (c *poweredSnapConn) SendChunk(ch pb.Chunk) error {
	if !c.on.Load() {
		return errPoweredOff
	}
	return c.ISnapshotConnection.SendChunk(ch)
}

var errPoweredOff = errors.New("coordtest: member powered off")

func (f *filtered) Validate(addr string) bool { return f.inner.Validate(addr) }
