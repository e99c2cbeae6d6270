package main

import (
	"context"
	"fmt"
	"time"
)

// The systems under test, in the order they run and appear in the table.
const (
	sysCoordkit = "coordkit"
	sysEtcd     = "etcd"
	sysRaw      = "raw" // raw dragonboat with a trivial state machine
)

var allSystems = []string{sysCoordkit, sysEtcd, sysRaw}

// system is a running cluster of one of the systems under test, with the
// operations every workload needs. member picks the member (0..members()-1)
// a call goes through; workloads spread clients over members with c%members().
type system interface {
	members() int
	put(ctx context.Context, member int, key string, value []byte) error
	// get reads key, linearizably or from the member's own replica.
	get(ctx context.Context, member int, key string, serializable bool) error
	close()
}

// casSystem is a system with transactions.
type casSystem interface {
	system
	// modRev returns key's ModRevision (0 if missing).
	modRev(ctx context.Context, member int, key string) (int64, error)
	// cas puts value if key's ModRevision is still rev; it returns whether it
	// did, and the key's new ModRevision when it did.
	cas(ctx context.Context, member int, key string, rev int64, value []byte) (int64, bool, error)
}

// watchSystem is a system with watches.
type watchSystem interface {
	system
	// revision returns the current revision as seen through member.
	revision(ctx context.Context, member int) (int64, error)
	// watch watches key on member for every change after revision after.
	// It returns once the watch is registered; fn then gets each event's
	// value, on one goroutine per watch, until ctx ends. A watch that ends
	// early calls fail.
	watch(ctx context.Context, member int, key string, after int64, fn func(value []byte), fail func(error)) error
}

// leaseSystem is a system with leases.
type leaseSystem interface {
	system
	// grantKeepAlive grants a lease with ttl and renews it once.
	grantKeepAlive(ctx context.Context, member int, ttl time.Duration) error
}

// lockSystem is a system with distributed locks and leader election:
// etcd's concurrency package, coordkit's coord/lock and coord/election.
type lockSystem interface {
	system
	// newMutex opens a session on member and a mutex named name in it.
	newMutex(ctx context.Context, member int, name string) (mutex, error)
	// newCandidate opens a session on member and a candidate in election name.
	newCandidate(ctx context.Context, member int, name string) (candidate, error)
}

// mutex is one client's handle on a distributed lock.
type mutex interface {
	lock(ctx context.Context) error
	unlock(ctx context.Context) error
	close()
}

// candidate is one participant in a leader election.
type candidate interface {
	campaign(ctx context.Context) error
	resign(ctx context.Context) error
	close()
}

// startSystem starts a fresh cluster of kind with the given number of voters
// on loopback, with its data in a new temporary directory that close removes.
func startSystem(kind string, voters int) (system, error) {
	switch kind {
	case sysCoordkit:
		return startCoordkit(voters)
	case sysEtcd:
		return startEtcd(voters)
	case sysRaw:
		return startRaw(voters)
	case sysV3:
		return startV3(voters)
	}
	return nil, fmt.Errorf("unknown system %q", kind)
}
