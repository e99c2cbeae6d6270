package lock

import (
	"context"
	"errors"
	"fmt"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/internal/queue"
)

// Semaphore admits at most Permits holders at once, in arrival order. Every
// Semaphore for one name must use the same permit count. A waiter watches
// the semaphore's directory, so a release wakes every waiter to recount
// (fine for the small queues semaphores usually have). Its methods are safe
// for concurrent use; one value holds at most one permit.
type Semaphore struct {
	s       *coord.Session
	dir     string
	permits int
	slot    queue.Slot
}

// NewSemaphore returns a Semaphore for name with the given permit count
// (at least 1). It does no I/O.
func NewSemaphore(s *coord.Session, name string, permits int) (*Semaphore, error) {
	if permits < 1 {
		return nil, fmt.Errorf("lock: semaphore needs at least one permit, got %d", permits)
	}
	return &Semaphore{s: s, dir: queue.DirOf(name), permits: permits, slot: newSlot()}, nil
}

// Acquire blocks until this value holds a permit: fewer than Permits keys
// were queued before its own. Errors as for Mutex.Lock.
func (m *Semaphore) Acquire(ctx context.Context) error {
	return m.slot.Acquire(func() (*queue.Hold, error) { return m.acquire(ctx) })
}

func (m *Semaphore) acquire(ctx context.Context) (*queue.Hold, error) {
	if err := m.s.Err(); err != nil {
		return nil, queue.SessionErr(m.s)
	}
	n := m.s.Node()
	key := queue.WaiterKey(m.dir, m.s.Lease())
	// The count read with the enqueue includes the waiter's own key.
	rev, g, err := queue.Enqueue(ctx, m.s, key, nil, coord.OpGet(m.dir, coord.WithPrefix(), coord.WithCountOnly()))
	if err != nil {
		return nil, err
	}
	queued, at := g.Count-1, rev // keys ahead, and the revision they were counted at
	for queued >= int64(m.permits) {
		if err = m.waitRelease(ctx, at); err != nil {
			break
		}
		if g, err = n.Get(ctx, m.dir, coord.WithPrefix(), coord.WithMaxCreateRev(rev-1), coord.WithCountOnly()); err != nil {
			break
		}
		queued, at = g.Count, g.Header.Revision
		if err = queue.StillQueued(ctx, m.s, key, rev, at, errs); err != nil {
			break
		}
	}
	if err == nil {
		return queue.StartHold(m.s, key, rev, at, errs), nil
	}
	queue.RemoveKey(m.s, key)
	return nil, err
}

func (m *Semaphore) waitRelease(ctx context.Context, rev coord.Revision) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := m.s.Node().Watch(wctx, m.dir, coord.WithPrefix(), coord.WithRev(rev+1), coord.WithFilterPut())
	for {
		select {
		case r, ok := <-w:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return coord.ErrClosed
			}
			if err := r.Err(); err != nil {
				if errors.Is(err, coord.ErrCompacted) {
					return nil
				}
				return err
			}
			if len(r.Events) > 0 {
				return nil
			}
		case <-m.s.Done():
			return queue.SessionErr(m.s)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Release gives the permit back. Errors as for Mutex.Unlock.
func (m *Semaphore) Release(ctx context.Context) error { return m.slot.Release(ctx) }

// Fence returns the current permit's fencing token (its key's create
// revision), 0 when none is held.
func (m *Semaphore) Fence() coord.Revision { return m.slot.Fence() }

// Done is closed when the current permit ends (Release, or loss: see
// Mutex.Done); nil when none is held.
func (m *Semaphore) Done() <-chan struct{} { return m.slot.Done() }
