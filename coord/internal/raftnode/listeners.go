package raftnode

import (
	"sync/atomic"

	"github.com/lni/dragonboat/v4/raftio"
)

// leaderListener tracks each shard's leader: it counts changes, ends the
// attempts waiting on the old leader (Shard.leaderChanged), and tells
// Config.Leading when this member takes the lead. dragonboat calls it on
// its own goroutines, so it only updates atomics and signals. It reaches
// the Host through the pointer Close clears (see Host.self).
type leaderListener struct{ h *atomic.Pointer[Host] }

func (l leaderListener) LeaderUpdated(info raftio.LeaderInfo) {
	h := l.h.Load()
	if h == nil || info.ShardID == 0 || info.ShardID > uint64(len(h.shards)) {
		return
	}
	s := h.shards[info.ShardID-1]
	if prev := s.leader.Swap(info.LeaderID); info.LeaderID != 0 && prev != info.LeaderID {
		s.leaderChanges.Add(1)
		s.leaderChanged()
	}
	if info.LeaderID == h.cfg.ReplicaID && h.cfg.Leading != nil {
		h.cfg.Leading(s.Index)
	}
}

// roleListener tells the Host when a shard's membership changed on this
// member, so that it refreshes what the peer transport knows of roles
// (watchRoles). dragonboat calls it on its own goroutine and waits for it:
// it only signals. It reaches the Host as leaderListener does.
type roleListener struct{ h *atomic.Pointer[Host] }

func (l roleListener) changed() {
	if h := l.h.Load(); h != nil {
		select {
		case h.rolesChanged <- struct{}{}:
		default:
		}
	}
}

func (l roleListener) MembershipChanged(raftio.NodeInfo)           { l.changed() }
func (l roleListener) NodeReady(raftio.NodeInfo)                   { l.changed() }
func (l roleListener) NodeUnloaded(raftio.NodeInfo)                { l.changed() }
func (l roleListener) NodeDeleted(raftio.NodeInfo)                 {}
func (l roleListener) NodeHostShuttingDown()                       {}
func (l roleListener) ConnectionEstablished(raftio.ConnectionInfo) {}
func (l roleListener) ConnectionFailed(raftio.ConnectionInfo)      {}
func (l roleListener) SendSnapshotStarted(raftio.SnapshotInfo)     {}
func (l roleListener) SendSnapshotCompleted(raftio.SnapshotInfo)   {}
func (l roleListener) SendSnapshotAborted(raftio.SnapshotInfo)     {}
func (l roleListener) SnapshotReceived(raftio.SnapshotInfo)        {}
func (l roleListener) SnapshotRecovered(raftio.SnapshotInfo)       { l.changed() }
func (l roleListener) SnapshotCreated(raftio.SnapshotInfo)         {}
func (l roleListener) SnapshotCompacted(raftio.SnapshotInfo)       {}
func (l roleListener) LogCompacted(raftio.EntryInfo)               {}
func (l roleListener) LogDBCompacted(raftio.EntryInfo)             {}
