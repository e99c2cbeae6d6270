package lock

import (
	"context"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/internal/queue"
)

// RWMutex is a distributed readers-writer lock. Readers share it; a writer
// holds it alone. Acquisitions are served in arrival order: a waiting
// writer blocks readers that arrive after it, so writers do not starve.
// Each writer watches only the waiter just before it; readers watch the
// writer before them. Its methods are safe for concurrent use; one RWMutex
// value holds at most one read or write acquisition at a time.
type RWMutex struct {
	s    *coord.Session
	dir  string
	slot queue.Slot
}

// NewRWMutex returns an RWMutex for name. It does no I/O.
func NewRWMutex(s *coord.Session, name string) *RWMutex {
	return &RWMutex{s: s, dir: queue.DirOf(name), slot: newSlot()}
}

func (m *RWMutex) readers() string { return m.dir + "r/" }
func (m *RWMutex) writers() string { return m.dir + "w/" }

// RLock blocks until this value holds a read lock: no writer that arrived
// earlier holds or waits. Errors as for Mutex.Lock.
func (m *RWMutex) RLock(ctx context.Context) error {
	return m.slot.Acquire(func() (*queue.Hold, error) { return queue.Acquire(ctx, m.s, m.readers(), m.writers(), nil, errs) })
}

// Lock blocks until this value holds the write lock: nobody that arrived
// earlier holds or waits. Errors as for Mutex.Lock.
func (m *RWMutex) Lock(ctx context.Context) error {
	return m.slot.Acquire(func() (*queue.Hold, error) { return queue.Acquire(ctx, m.s, m.writers(), m.dir, nil, errs) })
}

// Unlock releases the read or write lock this value holds. Errors as for
// Mutex.Unlock.
func (m *RWMutex) Unlock(ctx context.Context) error { return m.slot.Release(ctx) }

// Fence returns the current hold's fencing token (see Mutex.Fence), 0 when
// not held. For readers it orders read acquisitions after earlier writes.
func (m *RWMutex) Fence() coord.Revision { return m.slot.Fence() }

// IsOwner returns a compare that holds only while this hold lasts (see
// Mutex.IsOwner).
func (m *RWMutex) IsOwner() coord.Cmp { return m.slot.Owner(m.dir) }
