package lock

import (
	"context"
	"errors"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/internal/queue"
)

// Errors. Match them with errors.Is.
var (
	// ErrLocked: TryLock found the lock held or queued for by someone else.
	ErrLocked = errors.New("lock: held by another owner")
	// ErrNotHeld: Unlock (or Release) of a lock this value does not hold,
	// or whose hold was lost before the call.
	ErrNotHeld = errors.New("lock: not held")
	// ErrAlreadyHeld: Lock on a Mutex that already holds or is acquiring the
	// lock. A Mutex is not reentrant.
	ErrAlreadyHeld = errors.New("lock: already held or being acquired through this value")
	// ErrLost: a held lock ended without Unlock: its key was deleted or its
	// session ended. Done is closed and Err returns it, wrapping the cause.
	ErrLost = errors.New("lock: lost")
)

// Mutex is a distributed mutual-exclusion lock named by a key directory.
// Waiters are served in arrival order (the create revision of their key),
// and each watches only the waiter just before it, so a release wakes one
// waiter however many wait.
//
// Every acquisition uses its own key, so two Mutex values for one name are
// two independent contenders even on the same Session: they exclude each
// other like different processes. A Mutex value holds at most one
// acquisition; its methods are safe for concurrent use.
//
// The lock is held until Unlock, or until it is lost: its session expires
// or is closed, or its key is deleted by anyone. A crashed holder's lock is
// released when its session's TTL runs out; a holder that closes its
// session (or its Node) releases at once.
type Mutex struct {
	s    *coord.Session
	dir  string
	slot queue.Slot
}

// errs are the errors the queue reports for the package's locks.
var errs = &queue.Errors{Lost: ErrLost, NotHeld: ErrNotHeld, Locked: ErrLocked}

// newSlot is a lock value's slot.
func newSlot() queue.Slot { return queue.Slot{E: errs, Busy: ErrAlreadyHeld} }

// NewMutex returns a Mutex for name (a key directory; keep it under the
// top-level directory of the data it guards, so guarded transactions stay in
// one shard). It does no I/O.
func NewMutex(s *coord.Session, name string) *Mutex {
	return &Mutex{s: s, dir: queue.DirOf(name), slot: newSlot()}
}

// Lock blocks until this Mutex holds the lock, ctx ends, or the session
// ends. On a ctx or session error the waiter's key is removed before Lock
// returns, so no ghost waiter blocks the queue. Errors: ErrAlreadyHeld,
// context errors, coord.ErrSessionExpired, ErrLost (the waiter's key was
// deleted while waiting), and those of coord's Put and Get.
func (m *Mutex) Lock(ctx context.Context) error {
	return m.slot.Acquire(func() (*queue.Hold, error) { return queue.Acquire(ctx, m.s, m.dir, m.dir, nil, errs) })
}

// TryLock takes the lock only if nobody holds or waits for it, and returns
// ErrLocked at once otherwise. Other errors as for Lock.
func (m *Mutex) TryLock(ctx context.Context) error {
	return m.slot.Acquire(func() (*queue.Hold, error) { return queue.TryAcquire(ctx, m.s, m.dir, m.dir, errs) })
}

// Unlock releases the lock. It deletes the lock key only if it is still
// this acquisition's, so it can never release a newer holder. ErrNotHeld
// when this Mutex does not hold the lock, or lost it before the call (the
// Mutex is then free to Lock again).
func (m *Mutex) Unlock(ctx context.Context) error { return m.slot.Release(ctx) }

// Fence returns the fencing token of the current hold: the create revision
// of its key, which strictly increases with every new holder of the lock
// (across members, restarts and leader changes). 0 when not held. Pass it to
// the resource the lock guards, which must refuse tokens older than the
// newest it has seen.
func (m *Mutex) Fence() coord.Revision { return m.slot.Fence() }

// IsOwner returns a compare that holds only while this hold's key exists:
// put it in a Txn's If so the Txn's writes happen only while the lock is
// held. When the Mutex holds nothing, the compare never holds.
func (m *Mutex) IsOwner() coord.Cmp { return m.slot.Owner(m.dir) }

// Key returns the current hold's key, or "".
func (m *Mutex) Key() string {
	if h := m.slot.Held(); h != nil {
		return h.Key()
	}
	return ""
}

// Done returns a channel closed when the current hold ends: by Unlock
// (Err is then nil) or by losing the lock (Err says why). nil when not held.
func (m *Mutex) Done() <-chan struct{} { return m.slot.Done() }

// Err returns why the current hold ended: nil while held or after Unlock,
// an error wrapping ErrLost after a loss.
func (m *Mutex) Err() error {
	if h := m.slot.Held(); h != nil {
		return h.Err()
	}
	return nil
}
