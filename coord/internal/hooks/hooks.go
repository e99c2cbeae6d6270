// Package hooks lets coord's test harness and robustness suite reach into
// coord without widening the public API. Production code never sets these;
// each is a nil check on its path when unset.
//
// The hooks that plant bugs (a stale read, a lost watch event) exist only
// in builds with the coordkit_faults tag (faults.go): without it, the code
// paths they would change carry no check at all.
package hooks

import (
	"sync/atomic"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/vfs"
)

// WrapTransport makes the Node opened with *cfg (a *coord.Config) carry its
// peer traffic over wrap(its own transport factory), so that a harness can
// filter or delay what members receive. Set by package coord at init.
var WrapTransport func(cfg any, wrap func(config.TransportFactory) config.TransportFactory)

// SetFS makes the Node opened with *cfg (a *coord.Config) keep DataDir on
// fs: dragonboat's log and snapshots, and coordkit's own files. With a
// vfs.NewStrictMem, a harness can drop what was not synced, as a power loss
// does. Set by package coord at init.
var SetFS func(cfg any, fs vfs.FS)

// SetDiskFree makes the Node opened with *cfg (a *coord.Config) read its
// disk's free space from free instead of the filesystem, so that a test can
// fill the disk. Set by package coord at init.
var SetDiskFree func(cfg any, free func() (uint64, error))

// AckBeforeSync, when set, makes coordtest.WithPowerLoss give members a
// filesystem on which syncs do nothing until their first power loss:
// writes are acknowledged before they are durable, a deliberate bug, to
// prove that the power-loss check catches it. (dragonboat's log store
// takes no filesystem but the operating system's and its own in-memory
// and error-injecting ones, so the switch cannot single out the Raft log.)
// Read when a cluster is created.
var AckBeforeSync atomic.Bool

// Crash stops a *coord.Node as a crash would, to the cluster: no session is
// revoked and no leadership handed over. Its goroutines end and its files
// are closed (what it writes then is lost on a strict filesystem set to
// ignore syncs). Set by package coord at init.
var Crash func(node any)

// StateHashes returns, for a *coord.Node, the revision and state hash of
// each of its shard replicas. Set by package coord at init.
var StateHashes func(node any) (revs []int64, hashes []uint64)

// Tamper sets key's value on one replica of a *coord.Node alone, outside
// Raft, and reports whether key was live: a replica that diverged, for the
// tests of the integrity check. Set by package coord at init.
var Tamper func(node any, key string, value []byte) bool
