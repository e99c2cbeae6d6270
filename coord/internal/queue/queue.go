// Package queue is the fair queue that coord/lock and coord/election are
// built on, written, like them, on coord's public API only.
//
// Waiters queue as keys under a directory, each attached to its session's
// lease; a key's create revision is its place in the queue and its fencing
// token. A waiter is served when no key in its blocking directory (the
// queue itself, or a part of it: an RWMutex's readers wait for writers
// only) was created before its own, and it watches only the key just ahead
// of it, so a release wakes one waiter. A served waiter becomes a Hold,
// which ends when Released, or is lost when its key is deleted or its
// session ends.
//
// The primitives give the queue their own sentinel errors (Errors), so
// that every outcome is reported the same way by each: a waiter whose
// session ends gets coord.ErrSessionExpired, a waiter whose key is deleted
// while it waits, and a hold that ends without Release, the primitive's
// Lost error; a closed Node, coord.ErrClosed (or the caller's context
// error when that ended first).
package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// Errors are the sentinels of the primitive built on the queue; the
// queue's errors wrap them.
type Errors struct {
	// Lost: a hold ended without Release (its key was deleted, or its
	// session ended), or a waiter's key was deleted while it waited.
	Lost error
	// NotHeld: Release of a hold that was lost before the call.
	NotHeld error
	// Locked: TryAcquire found a waiter or holder ahead.
	Locked error
}

// afterEnqueue, when set by a test, runs right after a waiter queued its
// key: it lets a test end the session at the worst moment.
var afterEnqueue func()

// wakeups counts how often a waiter woke because the key it watched went
// away; tests use it to check that a release wakes only the next waiter.
var wakeups atomic.Int64

// cleanupTimeout bounds the deletion of a waiter's key after its Lock call
// was cancelled: the caller's ctx is already done, so a fresh one is used.
const cleanupTimeout = 5 * time.Second

// WaiterKey returns a key unique to one acquisition attempt under dir.
func WaiterKey(dir string, lease coord.LeaseID) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("queue: crypto/rand failed: %v", err))
	}
	return fmt.Sprintf("%s%016x-%s", dir, uint64(lease), hex.EncodeToString(b[:]))
}

// DirOf is the key directory of a queue named name: name with a trailing
// "/".
func DirOf(name string) string {
	if name != "" && name[len(name)-1] == '/' {
		return name
	}
	return name + "/"
}

// Enqueue writes key, attached to the session's lease, and in the same
// revision runs peek (a Get of the queue), so that a waiter learns where it
// stands without another round trip. It returns the key's create revision:
// its place in the queue and its fencing token.
func Enqueue(ctx context.Context, s *coord.Session, key string, value []byte, peek coord.Op) (coord.Revision, *coord.GetResponse, error) {
	r, err := s.Node().Txn(ctx).Then(coord.OpPut(key, value, coord.WithLease(s.Lease())), peek).Commit()
	if err != nil {
		if errors.Is(err, coord.ErrOutcomeUnknown) {
			RemoveKey(s, key) // it may exist: leave no ghost waiter
		}
		if errors.Is(err, coord.ErrLeaseNotFound) {
			return 0, nil, fmt.Errorf("%w: %w", coord.ErrSessionExpired, err)
		}
		return 0, nil, err
	}
	return r.Header.Revision, r.Responses[1].Get, nil
}

// peekAhead is the Get that enqueue runs to find the waiter's predecessor in
// blockDir: the newest keys, the waiter's own among them when blockDir
// holds it.
func peekAhead(blockDir string) coord.Op {
	return coord.OpGet(blockDir, coord.WithPrefix(), coord.WithKeysOnly(), coord.WithLimit(2),
		coord.WithSort(coord.SortByCreateRevision, coord.SortDescend))
}

// ahead picks, from peekAhead's answer, the key created last before rev.
func ahead(g *coord.GetResponse, rev coord.Revision) *coord.KeyValue {
	for _, kv := range g.KVs {
		if kv.CreateRevision < rev {
			return kv
		}
	}
	return nil
}

// RemoveKey deletes a waiter's key with a fresh deadline, best effort: if it
// fails the key still goes with the session's lease.
func RemoveKey(s *coord.Session, key string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	_, _ = s.Node().Delete(ctx, key)
}

// predecessor finds the key in dir created last before rev, among the keys
// that block the waiter (all of dir, or only a writers' subdirectory), and
// the revision the answer is valid at.
func predecessor(ctx context.Context, n *coord.Node, dir string, rev coord.Revision) (*coord.KeyValue, coord.Revision, error) {
	g, err := n.Get(ctx, dir, coord.WithPrefix(), coord.WithMaxCreateRev(rev-1),
		coord.WithSort(coord.SortByCreateRevision, coord.SortDescend), coord.WithLimit(1))
	if err != nil {
		return nil, 0, err
	}
	if len(g.KVs) == 0 {
		return nil, g.Header.Revision, nil
	}
	return g.KVs[0], g.Header.Revision, nil
}

// waitGone blocks until key is deleted after revision rev, or the waiter's
// own key is (its session's lease was revoked or expired, or someone deleted
// it), or the session ends, or ctx ends.
func waitGone(ctx context.Context, s *coord.Session, key, own string, rev coord.Revision, e *Errors) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := s.Node()
	pred := n.Watch(wctx, key, coord.WithRev(rev+1), coord.WithFilterPut())
	self := n.Watch(wctx, own, coord.WithRev(rev+1), coord.WithFilterPut())
	closed := func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return coord.ErrClosed
	}
	for {
		select {
		case r, ok := <-pred:
			if !ok {
				return closed()
			}
			if err := r.Err(); err != nil {
				if errors.Is(err, coord.ErrCompacted) {
					return nil // history moved on: re-read the queue
				}
				return err
			}
			if len(r.Events) > 0 {
				wakeups.Add(1)
				return nil
			}
		case r, ok := <-self:
			if !ok {
				return closed()
			}
			if err := r.Err(); err != nil && !errors.Is(err, coord.ErrCompacted) {
				return err
			}
			if len(r.Events) > 0 {
				return ownKeyGone(ctx, s, e)
			}
		case <-s.Done():
			return SessionErr(s)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// StillQueued checks that the waiter's key, created at ownRev, existed at
// revision at: read together with the queue at that revision, and watched
// from at+1 on, no deletion of it can go unnoticed.
func StillQueued(ctx context.Context, s *coord.Session, own string, ownRev, at coord.Revision, e *Errors) error {
	g, err := s.Node().Get(ctx, own, coord.WithRev(at))
	if err != nil {
		return err
	}
	if len(g.KVs) == 0 || g.KVs[0].CreateRevision != ownRev {
		return ownKeyGone(ctx, s, e)
	}
	return nil
}

// ownKeyGone explains why a waiter's key disappeared: its session's lease
// ended (ErrSessionExpired), or someone deleted the key (e.Lost).
func ownKeyGone(ctx context.Context, s *coord.Session, e *Errors) error {
	if _, err := s.Node().TimeToLive(ctx, s.Lease()); errors.Is(err, coord.ErrLeaseNotFound) {
		return fmt.Errorf("%w: lease %d ended while waiting", coord.ErrSessionExpired, s.Lease())
	}
	return fmt.Errorf("%w: the waiter's key was deleted while it waited", e.Lost)
}

// SessionErr is the error of a waiter or holder whose session ended:
// coord.ErrSessionExpired, wrapping why the session ended.
func SessionErr(s *coord.Session) error {
	if err := s.Err(); err != nil && !errors.Is(err, coord.ErrSessionExpired) {
		return fmt.Errorf("%w: %w", coord.ErrSessionExpired, err)
	} else if err != nil {
		return err
	}
	return coord.ErrSessionExpired
}

// Acquire queues under dir and waits until no key in blockDir was created
// before this waiter's. On any failure the waiter's key is removed. An
// uncontended acquisition is one Raft write and no read.
func Acquire(ctx context.Context, s *coord.Session, dir, blockDir string, value []byte, e *Errors) (*Hold, error) {
	if err := s.Err(); err != nil {
		return nil, SessionErr(s)
	}
	key := WaiterKey(dir, s.Lease())
	rev, g, err := Enqueue(ctx, s, key, value, peekAhead(blockDir))
	if err != nil {
		return nil, err
	}
	if afterEnqueue != nil {
		afterEnqueue()
	}
	// Invariant: the waiter's key existed at revision at, and pred was the
	// key ahead of it then; watching from at+1 misses no change.
	pred, at := ahead(g, rev), rev
	for pred != nil {
		if err = waitGone(ctx, s, pred.Key, key, at, e); err != nil {
			break
		}
		if pred, at, err = predecessor(ctx, s.Node(), blockDir, rev); err != nil {
			break
		}
		if err = StillQueued(ctx, s, key, rev, at, e); err != nil {
			break
		}
	}
	if err == nil {
		return StartHold(s, key, rev, at, e), nil
	}
	RemoveKey(s, key)
	return nil, err
}

// TryAcquire queues and, if any key in blockDir is ahead, leaves the queue
// at once with e.Locked.
func TryAcquire(ctx context.Context, s *coord.Session, dir, blockDir string, e *Errors) (*Hold, error) {
	if err := s.Err(); err != nil {
		return nil, SessionErr(s)
	}
	key := WaiterKey(dir, s.Lease())
	rev, g, err := Enqueue(ctx, s, key, nil, peekAhead(blockDir))
	if err != nil {
		return nil, err
	}
	if ahead(g, rev) == nil {
		return StartHold(s, key, rev, rev, e), nil
	}
	RemoveKey(s, key)
	return nil, e.Locked
}

// Hold is one acquisition: its key, fence, and a watcher that notices the
// key's deletion or the session's end.
type Hold struct {
	s      *coord.Session
	e      *Errors
	key    string
	rev    coord.Revision
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup

	mu  sync.Mutex
	err error
}

// StartHold starts a hold on key, created at rev and known to exist at
// revision at: its watcher notices any deletion after at.
func StartHold(s *coord.Session, key string, rev, at coord.Revision, e *Errors) *Hold {
	wctx, cancel := context.WithCancel(context.Background())
	h := &Hold{s: s, e: e, key: key, rev: rev, cancel: cancel, done: make(chan struct{})}
	w := s.Node().Watch(wctx, key, coord.WithRev(at+1), coord.WithFilterPut())
	h.wg.Add(1)
	go h.watch(wctx, w)
	return h
}

func (h *Hold) watch(ctx context.Context, w coord.WatchChan) {
	defer h.wg.Done()
	for {
		select {
		case r, ok := <-w:
			if !ok {
				if ctx.Err() == nil {
					h.end(fmt.Errorf("%w: %w", h.e.Lost, coord.ErrClosed))
				}
				return
			}
			if err := r.Err(); err != nil {
				h.end(fmt.Errorf("%w: %w", h.e.Lost, err))
				return
			}
			if len(r.Events) > 0 {
				h.end(fmt.Errorf("%w: key %s deleted", h.e.Lost, h.key))
				return
			}
		case <-h.s.Done():
			h.end(fmt.Errorf("%w: %w", h.e.Lost, SessionErr(h.s)))
			return
		case <-ctx.Done():
			return
		}
	}
}

func (h *Hold) end(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.done:
		return
	default:
	}
	h.err = err
	close(h.done)
}

// ended reports whether the hold ended.
func (h *Hold) ended() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// Key is the hold's key.
func (h *Hold) Key() string { return h.key }

// Fence is the hold's fencing token: its key's create revision.
func (h *Hold) Fence() coord.Revision { return h.rev }

// Done is closed when the hold ends: Released (Err nil) or lost.
func (h *Hold) Done() <-chan struct{} { return h.done }

// Err is nil while the hold lasts and after Release; after a loss, an
// error wrapping the primitive's Lost error and the cause.
func (h *Hold) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Release deletes the key if it is still this hold's, and ends the hold
// with a nil error. The primitive's NotHeld error if it was lost first.
func (h *Hold) Release(ctx context.Context) error {
	h.cancel()
	h.wg.Wait()
	lost := h.Err()
	r, err := h.s.Node().Txn(ctx).If(coord.Compare(coord.CreateRevision(h.key), "=", h.rev)).
		Then(coord.OpDelete(h.key)).Commit()
	if err != nil {
		return err
	}
	h.end(nil)
	if !r.Succeeded {
		if lost != nil {
			return fmt.Errorf("%w: %w", h.e.NotHeld, lost)
		}
		return fmt.Errorf("%w: the key was already gone", h.e.NotHeld)
	}
	return nil
}

// Owner returns the compare that holds only while this hold's key exists.
func (h *Hold) Owner() coord.Cmp {
	return coord.Compare(coord.CreateRevision(h.key), "=", h.rev)
}

// NotHeld is a compare that never holds (no key has create revision -1).
func NotHeld(dir string) coord.Cmp {
	return coord.Compare(coord.CreateRevision(dir+"\x00not-held"), "=", coord.Revision(-1))
}
