package coord

import (
	"fmt"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

// guardedTransport is the transport factory dragonboat is given: each batch
// a peer sends passes through guard first, and reaches dragonboat only if
// guard returns true; each snapshot chunk only if chunks returns true.
type guardedTransport struct {
	config.TransportFactory
	guard  func(*pb.MessageBatch) bool
	chunks func() bool
}

// Create implements config.TransportFactory.
func (g guardedTransport) Create(nhc config.NodeHostConfig, h raftio.MessageHandler, ch raftio.ChunkHandler) raftio.ITransport {
	return g.TransportFactory.Create(nhc, func(b pb.MessageBatch) {
		if g.guard(&b) {
			h(b)
		}
	}, func(c pb.Chunk) bool {
		return g.chunks() && ch(c)
	})
}

// screen looks at each batch peers send before dragonboat does. It stops
// this member when a heartbeat shows that its Raft log lost entries it had
// acknowledged, and drops everything peers send from then on; it holds
// back what would grow the log (holdBack). A leader's heartbeat carries the commit index capped at
// what it counts the member as holding: what the member acknowledged, and
// it acknowledges only entries on disk. A heartbeat past the end of the
// member's log means that the log came back shorter than it was: cut at a
// record's boundary, or emptied under the same replica ID, which no check
// of the files can see. dragonboat would panic the process on it; and a
// member that forgot what it acknowledged could vote a committed write
// away. The member stops instead (fail), and Err says why.
//
// Until a replica has passed this check once since it started, the
// entries a leader sends it are dropped: appending them would repair the
// shorter log before any heartbeat could show it. The leader sends them
// again in answer to the heartbeat, so a restart costs at most a heartbeat
// interval of catching up. While the disk is nearly full (watchDisk), the
// leader's entries and the proposals forwarded to this member are dropped
// too.
func (n *Node) screen(b *pb.MessageBatch) bool {
	if n.failure.Load() != nil {
		return false
	}
	nh := n.host.Load()
	if nh == nil {
		return true
	}
	low := n.diskLow.Load()
	held := 0 // messages to drop
	for i := range b.Requests {
		m := &b.Requests[i]
		idx := int(m.ShardID) - 1
		if m.To != n.replicaID || idx < 0 || idx >= len(n.shards) {
			continue
		}
		checked := &n.shards[idx].logChecked
		switch {
		case holdBack(m, low, checked.Load()):
			held++
		case m.Type == pb.Heartbeat:
			lr, err := nh.GetLogReader(m.ShardID)
			if err != nil {
				continue // not started: dragonboat drops the message
			}
			if _, last := lr.GetRange(); m.Commit > last {
				n.fail(fmt.Errorf("%w: shard %d's Raft log in %s ends at index %d, but its leader (replica %d) holds this member to have acknowledged index %d: entries it had written are gone",
					ErrCorrupt, idx, n.cfg.DataDir, last, m.From, m.Commit))
				return false
			}
			checked.Store(true)
		}
	}
	if held > 0 {
		kept := make([]pb.Message, 0, len(b.Requests)-held)
		for _, m := range b.Requests {
			idx := int(m.ShardID) - 1
			if m.To == n.replicaID && idx >= 0 && idx < len(n.shards) && holdBack(&m, low, n.shards[idx].logChecked.Load()) {
				continue
			}
			kept = append(kept, m)
		}
		b.Requests = kept
	}
	return len(b.Requests) > 0
}

// held0 reports whether m, to this member, is dropped: entries from a
// leader before the first heartbeat check (checked), and, while the disk
// is nearly full (low), entries from a leader and proposals forwarded to
// this member as leader, which would grow its log. A leader sends dropped
// entries again; a dropped proposal is retried by its member.
func holdBack(m *pb.Message, low, checked bool) bool {
	return m.Type == pb.Replicate && (low || !checked) || m.Type == pb.Propose && low
}

// fail stops this member, at most once, because its state cannot be
// trusted: err is what Err reports. During Open, Open returns err instead.
func (n *Node) fail(err error) {
	if !n.failure.CompareAndSwap(nil, &err) {
		return
	}
	n.log.Error("member stopped: its state cannot be trusted; rebuild it from its peers", "err", err)
	if n.opened.Load() {
		go n.shutdown(false)
	}
}

// Err returns nil while this member runs, and after Close. When the member
// stopped itself because its state cannot be trusted, it returns why, an
// error wrapping ErrCorrupt; the Node is then closed, and calls fail with
// ErrClosed wrapping the same cause. It does not block.
func (n *Node) Err() error {
	if e := n.failure.Load(); e != nil {
		return *e
	}
	return nil
}

// errClosed is the error of calls on a closed Node.
func (n *Node) errClosed() error {
	if e := n.failure.Load(); e != nil {
		return fmt.Errorf("%w: %w", ErrClosed, *e)
	}
	return ErrClosed
}
