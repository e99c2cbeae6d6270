package coord

import (
	"time"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// diskCheckEvery is how often a member reads its disk's free space.
const diskCheckEvery = 250 * time.Millisecond

// diskFree returns the free space of the filesystem that holds DataDir.
func (n *Node) diskFree() (uint64, error) {
	if n.cfg.testDiskFree != nil {
		return n.cfg.testDiskFree()
	}
	du, err := n.cfg.fs().GetDiskUsage(n.cfg.DataDir)
	return du.AvailBytes, err
}

// watchDisk keeps diskLow current: set while the free space is below
// Config.DiskReserve. On the way down the member hands over the leadership
// of the shards it leads, so that their writes go on elsewhere. A
// filesystem that cannot tell its free space (in memory) is never low.
func (n *Node) watchDisk() {
	defer n.wg.Done()
	t := time.NewTicker(diskCheckEvery)
	defer t.Stop()
	for {
		free, err := n.diskFree()
		low := err == nil && free < uint64(n.cfg.DiskReserve)
		if low != n.diskLow.Load() {
			n.diskLow.Store(low)
			if low {
				n.log.Warn("disk nearly full: this member takes no more writes until space is freed",
					"free_bytes", free, "reserve_bytes", n.cfg.DiskReserve, "data_dir", n.cfg.DataDir)
			} else {
				n.log.Warn("disk space freed: this member takes writes again", "free_bytes", free)
			}
		}
		if low {
			n.transferLeadership()
		}
		select {
		case <-n.stop:
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
