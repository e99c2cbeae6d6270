package peer

import (
	_ "unsafe" // for go:linkname

	// Imported for its initialisation order: dragonboat's transport
	// package sets its queue length in its own init, which must run before
	// ours overrides it.
	_ "github.com/lni/dragonboat/v4"
)

// SendQueueLength is how many Raft messages dragonboat queues for one peer
// before it drops more (Raft sends them again).
//
// dragonboat allocates that queue whole for every peer it talks to, at its
// default of 2048 messages of 304 bytes: 608 KiB per peer, idle or not,
// which made up most of what each observer cost the leader once this
// transport had replaced dragonboat's buffers. This transport drains the
// queue as fast as dragonboat fills it, into a queue of its own that is
// bounded in bytes and empty when the peer is idle, so a short one
// suffices: 256 messages, 76 KiB.
//
// dragonboat offers no setting for it but a JSON file in the process's
// working directory, which a library cannot rely on; the variable is set
// through go:linkname instead, for the whole process, at init. A
// dragonboat upgrade that renames it fails the build;
// TestDragonboatSendQueueIsShort checks that dragonboat's own init does not
// overwrite it, and bench's peers workload measures what a peer costs.
const SendQueueLength = 256

//go:linkname dragonboatSendQueueLen github.com/lni/dragonboat/v4/internal/transport.sendQueueLen
var dragonboatSendQueueLen uint64

func init() { dragonboatSendQueueLen = SendQueueLength }
