package coordtest

import (
	"sync"
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
	return f.inner.Create(nhc, mh, chh)
}

func (f *filtered) Validate(addr string) bool { return f.inner.Validate(addr) }
