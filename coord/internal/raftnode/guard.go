package raftnode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// guardedTransport is the transport factory dragonboat is given: each batch
// a peer sends passes through guard first, and reaches dragonboat only if
// guard returns true; each snapshot chunk only if chunks returns true.
type guardedTransport struct {
	config.TransportFactory
	guard  func(*pb.MessageBatch) bool
	chunks func() bool
	muted  func() bool
	// created is given the transport Create made.
	created func(raftio.ITransport)
}

// Create implements config.TransportFactory.
func (g guardedTransport) Create(nhc config.NodeHostConfig, h raftio.MessageHandler, ch raftio.ChunkHandler) raftio.ITransport {
	t := mutedTransport{g.TransportFactory.Create(nhc, func(b pb.MessageBatch) {
		if g.guard(&b) {
			h(b)
		}
	}, func(c pb.Chunk) bool {
		return g.chunks() && ch(c)
	}), g.muted}
	g.created(t.ITransport)
	return t
}

// mutedTransport sends nothing once muted returns true: a member that
// stopped itself (fail) says nothing more to its peers, whatever
// dragonboat, which may go on running, asks it to send.
type mutedTransport struct {
	raftio.ITransport
	muted func() bool
}

var errMuted = errors.New("coord: this member stopped itself and sends nothing")

func (t mutedTransport) GetConnection(ctx context.Context, target string) (raftio.IConnection, error) {
	c, err := t.ITransport.GetConnection(ctx, target)
	if err != nil {
		return nil, err
	}
	return mutedConn{c, t.muted}, nil
}

func (t mutedTransport) GetSnapshotConnection(ctx context.Context, target string) (raftio.ISnapshotConnection, error) {
	c, err := t.ITransport.GetSnapshotConnection(ctx, target)
	if err != nil {
		return nil, err
	}
	return mutedSnapshotConn{c, t.muted}, nil
}

type mutedConn struct {
	raftio.IConnection
	muted func() bool
}

func (c mutedConn) SendMessageBatch(b pb.MessageBatch) error {
	if c.muted() {
		return errMuted
	}
	return c.IConnection.SendMessageBatch(b)
}

type mutedSnapshotConn struct {
	raftio.ISnapshotConnection
	muted func() bool
}

func (c mutedSnapshotConn) SendChunk(ch pb.Chunk) error {
	if c.muted() {
		return errMuted
	}
	return c.ISnapshotConnection.SendChunk(ch)
}

// screen looks at each batch peers send before dragonboat does. It stops
// this member when a heartbeat shows that its Raft log lost entries it had
// acknowledged, and drops everything peers send from then on; it holds
// back what would grow the log (holdBack). A leader's heartbeat carries
// the commit index capped at what it counts the member as holding: what
// the member acknowledged, and it acknowledges only entries on disk. A
// heartbeat past the end of the member's log means that the log came back
// shorter than it was: cut at a record's boundary, or emptied under the
// same replica ID, which no check of the files can see. dragonboat would
// panic the process on it; and a member that forgot what it acknowledged
// could vote a committed write away. The member stops instead (fail), and
// Err says why.
//
// Until a replica has passed this check once since it started, the
// entries a leader sends it are dropped: appending them would repair the
// shorter log before any heartbeat could show it. The leader sends them
// again in answer to the heartbeat, so a restart costs at most a heartbeat
// interval of catching up. While the disk is nearly full (watchDisk), the
// leader's entries and the proposals forwarded to this member are dropped
// too.
func (h *Host) screen(b *pb.MessageBatch) bool {
	if h.failure.Load() != nil {
		return false
	}
	nh := h.host.Load()
	if nh == nil {
		return true
	}
	low := h.diskLow.Load()
	self := h.cfg.ReplicaID
	held := 0 // messages to drop
	for i := range b.Requests {
		m := &b.Requests[i]
		idx := int(m.ShardID) - 1
		if m.To != self || idx < 0 || idx >= len(h.shards) {
			continue
		}
		checked := &h.shards[idx].logChecked
		switch {
		case holdBack(m, low, checked.Load()):
			held++
		case m.Type == pb.Heartbeat:
			lr, err := nh.GetLogReader(m.ShardID)
			if err != nil {
				continue // not started: dragonboat drops the message
			}
			if _, last := lr.GetRange(); m.Commit > last {
				h.fail(fmt.Errorf("%w: shard %d's Raft log in %s ends at index %d, but its leader (replica %d) holds this member to have acknowledged index %d: entries it had written are gone",
					errdefs.ErrCorrupt, idx, h.cfg.DataDir, last, m.From, m.Commit))
				return false
			}
			checked.Store(true)
		}
	}
	if held > 0 {
		kept := make([]pb.Message, 0, len(b.Requests)-held)
		for _, m := range b.Requests {
			idx := int(m.ShardID) - 1
			if m.To == self && idx >= 0 && idx < len(h.shards) && holdBack(&m, low, h.shards[idx].logChecked.Load()) {
				continue
			}
			kept = append(kept, m)
		}
		b.Requests = kept
	}
	return len(b.Requests) > 0
}

// holdBack reports whether m, to this member, is dropped: entries from a
// leader before the first heartbeat check (checked), and, while the disk
// is nearly full (low), entries from a leader and proposals forwarded to
// this member as leader, which would grow its log. A leader sends dropped
// entries again; a dropped proposal is retried by its member.
func holdBack(m *pb.Message, low, checked bool) bool {
	return m.Type == pb.Replicate && (low || !checked) || m.Type == pb.Propose && low
}

// fail stops this member, at most once, because its state cannot be
// trusted: err is what Err reports. From then on the member sends nothing
// to its peers and takes nothing from them. Before Run, the start fails
// with err instead.
func (h *Host) fail(err error) {
	if !h.failure.CompareAndSwap(nil, &err) {
		return
	}
	h.mute.Store(true)
	h.log.Error("member stopped: its state cannot be trusted", "err", err)
	if h.running.Load() && h.cfg.Failed != nil {
		go h.cfg.Failed(err)
	}
}

// diskFailed stops this member because a write to its disk failed (err
// names the file): see diskFS, whose goroutine calls it and then blocks.
func (h *Host) diskFailed(err error) {
	h.diskBroken.Store(true)
	h.fail(diskFailure(h.cfg.DataDir, err))
	h.Stop() // ends a start's waits, too
}

// live holds the members of this process that run (between Run and
// Close), for failAll.
var live sync.Map // *Host -> struct{}

// failAll stops every member of this process that runs with err: dragonboat
// met a state it cannot go on from (dbLog.Panicf). Which member it was is
// not known; a process runs one member but in tests.
func failAll(err error) {
	live.Range(func(k, _ any) bool {
		k.(*Host).fail(err)
		return true
	})
}

// Err returns nil while this member runs, and after a clean stop. When the
// member stopped itself because its state cannot be trusted, it returns
// why: an error wrapping ErrCorrupt, or ErrDiskFailure. It does not block.
func (h *Host) Err() error {
	if e := h.failure.Load(); e != nil {
		return *e
	}
	return nil
}

// diskCheckEvery is how often a member reads its disk's free space.
const diskCheckEvery = 250 * time.Millisecond

// diskFree returns the free space of the filesystem that holds DataDir.
func (h *Host) diskFree() (uint64, error) {
	if h.cfg.DiskFree != nil {
		return h.cfg.DiskFree()
	}
	fs := h.cfg.FS
	if fs == nil {
		fs = vfs.Default
	}
	du, err := fs.GetDiskUsage(h.cfg.DataDir)
	return du.AvailBytes, err
}

// watchDisk keeps diskLow current: set while the free space is below
// Config.DiskReserve. On the way down the member hands over the leadership
// of the shards it leads, so that their writes go on elsewhere. A
// filesystem that cannot tell its free space (in memory) is never low.
func (h *Host) watchDisk() {
	defer h.wg.Done()
	t := time.NewTicker(diskCheckEvery)
	defer t.Stop()
	for {
		free, err := h.diskFree()
		low := err == nil && free < uint64(h.cfg.DiskReserve)
		if low != h.diskLow.Load() {
			h.diskLow.Store(low)
			if low {
				h.log.Warn("disk nearly full: this member takes no more writes until space is freed",
					"free_bytes", free, "reserve_bytes", h.cfg.DiskReserve, "data_dir", h.cfg.DataDir)
			} else {
				h.log.Warn("disk space freed: this member takes writes again", "free_bytes", free)
			}
		}
		if low {
			h.TransferLeadership(h.ctx)
		}
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// growsLog reports whether a command may be refused for lack of disk space:
// every one but those that keep leases alive or shrink the store.
func growsLog(kind uint8) bool {
	switch kind {
	case sm.CmdKeepAlive, sm.CmdRevoke, sm.CmdExpire, sm.CmdCompact:
		return false
	}
	return true
}
