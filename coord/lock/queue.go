package lock

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

// afterEnqueue, when set by a test, runs right after a waiter queued its
// key: it lets a test end the session at the worst moment.
var afterEnqueue func()

// wakeups counts how often a waiter woke because the key it watched went
// away; tests use it to check that a release wakes only the next waiter.
var wakeups atomic.Int64

// cleanupTimeout bounds the deletion of a waiter's key after its Lock call
// was cancelled: the caller's ctx is already done, so a fresh one is used.
const cleanupTimeout = 5 * time.Second

// waiterKey returns a key unique to one acquisition attempt under dir.
func waiterKey(dir string, lease coord.LeaseID) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("lock: crypto/rand failed: %v", err))
	}
	return fmt.Sprintf("%s%016x-%s", dir, uint64(lease), hex.EncodeToString(b[:]))
}

func dirOf(name string) string {
	if name != "" && name[len(name)-1] == '/' {
		return name
	}
	return name + "/"
}

// enqueue writes key, attached to the session's lease, and in the same
// revision runs peek (a Get of the queue), so that a waiter learns where it
// stands without another round trip. It returns the key's create revision:
// its place in the queue and its fencing token.
func enqueue(ctx context.Context, s *coord.Session, key string, value []byte, peek coord.Op) (coord.Revision, *coord.GetResponse, error) {
	r, err := s.Node().Txn(ctx).Then(coord.OpPut(key, value, coord.WithLease(s.Lease())), peek).Commit()
	if err != nil {
		if errors.Is(err, coord.ErrOutcomeUnknown) {
			removeKey(s, key) // it may exist: leave no ghost waiter
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

// removeKey deletes a waiter's key with a fresh deadline, best effort: if it
// fails the key still goes with the session's lease.
func removeKey(s *coord.Session, key string) {
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
func waitGone(ctx context.Context, s *coord.Session, key, own string, rev coord.Revision) error {
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
				return ownKeyGone(ctx, s)
			}
		case <-s.Done():
			return sessionErr(s)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stillQueued checks that the waiter's key, created at ownRev, existed at
// revision at: read together with the queue at that revision, and watched
// from at+1 on, no deletion of it can go unnoticed.
func stillQueued(ctx context.Context, s *coord.Session, own string, ownRev, at coord.Revision) error {
	g, err := s.Node().Get(ctx, own, coord.WithRev(at))
	if err != nil {
		return err
	}
	if len(g.KVs) == 0 || g.KVs[0].CreateRevision != ownRev {
		return ownKeyGone(ctx, s)
	}
	return nil
}

// ownKeyGone explains why a waiter's key disappeared: its session's lease
// ended (ErrSessionExpired), or someone deleted the key (ErrLost).
func ownKeyGone(ctx context.Context, s *coord.Session) error {
	if _, err := s.Node().TimeToLive(ctx, s.Lease()); errors.Is(err, coord.ErrLeaseNotFound) {
		return fmt.Errorf("%w: lease %d ended while waiting", coord.ErrSessionExpired, s.Lease())
	}
	return fmt.Errorf("%w: the waiter's key was deleted while it waited", ErrLost)
}

func sessionErr(s *coord.Session) error {
	if err := s.Err(); err != nil && !errors.Is(err, coord.ErrSessionExpired) {
		return fmt.Errorf("%w: %w", coord.ErrSessionExpired, err)
	} else if err != nil {
		return err
	}
	return coord.ErrSessionExpired
}

// acquire queues under dir and waits until no key in blockDir was created
// before this waiter's. On any failure the waiter's key is removed. An
// uncontended acquisition is one Raft write and no read.
func acquire(ctx context.Context, s *coord.Session, dir, blockDir string, value []byte) (*hold, error) {
	if err := s.Err(); err != nil {
		return nil, sessionErr(s)
	}
	key := waiterKey(dir, s.Lease())
	rev, g, err := enqueue(ctx, s, key, value, peekAhead(blockDir))
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
		if err = waitGone(ctx, s, pred.Key, key, at); err != nil {
			break
		}
		if pred, at, err = predecessor(ctx, s.Node(), blockDir, rev); err != nil {
			break
		}
		if err = stillQueued(ctx, s, key, rev, at); err != nil {
			break
		}
	}
	if err == nil {
		return startHold(s, key, rev, at), nil
	}
	removeKey(s, key)
	return nil, err
}

// tryAcquire queues and, if any key in blockDir is ahead, leaves the queue
// at once with ErrLocked.
func tryAcquire(ctx context.Context, s *coord.Session, dir, blockDir string) (*hold, error) {
	if err := s.Err(); err != nil {
		return nil, sessionErr(s)
	}
	key := waiterKey(dir, s.Lease())
	rev, g, err := enqueue(ctx, s, key, nil, peekAhead(blockDir))
	if err != nil {
		return nil, err
	}
	if ahead(g, rev) == nil {
		return startHold(s, key, rev, rev), nil
	}
	removeKey(s, key)
	return nil, ErrLocked
}

// hold is one acquisition: its key, fence, and a watcher that notices the
// key's deletion or the session's end.
type hold struct {
	s      *coord.Session
	key    string
	rev    coord.Revision
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup

	mu  sync.Mutex
	err error
}

// startHold starts a hold on key, created at rev and known to exist at
// revision at: its watcher notices any deletion after at.
func startHold(s *coord.Session, key string, rev, at coord.Revision) *hold {
	wctx, cancel := context.WithCancel(context.Background())
	h := &hold{s: s, key: key, rev: rev, cancel: cancel, done: make(chan struct{})}
	w := s.Node().Watch(wctx, key, coord.WithRev(at+1), coord.WithFilterPut())
	h.wg.Add(1)
	go h.watch(wctx, w)
	return h
}

func (h *hold) watch(ctx context.Context, w coord.WatchChan) {
	defer h.wg.Done()
	for {
		select {
		case r, ok := <-w:
			if !ok {
				if ctx.Err() == nil {
					h.end(fmt.Errorf("%w: %w", ErrLost, coord.ErrClosed))
				}
				return
			}
			if err := r.Err(); err != nil {
				h.end(fmt.Errorf("%w: %w", ErrLost, err))
				return
			}
			if len(r.Events) > 0 {
				h.end(fmt.Errorf("%w: key %s deleted", ErrLost, h.key))
				return
			}
		case <-h.s.Done():
			h.end(fmt.Errorf("%w: %w", ErrLost, sessionErr(h.s)))
			return
		case <-ctx.Done():
			return
		}
	}
}

func (h *hold) end(err error) {
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

func (h *hold) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// release deletes the key if it is still this hold's, and ends the hold
// with a nil error. ErrNotHeld if it was lost first.
func (h *hold) release(ctx context.Context) error {
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
			return fmt.Errorf("%w: %w", ErrNotHeld, lost)
		}
		return fmt.Errorf("%w: the lock key was already gone", ErrNotHeld)
	}
	return nil
}

// owner returns the compare that holds only while this hold's key exists.
func (h *hold) owner() coord.Cmp {
	return coord.Compare(coord.CreateRevision(h.key), "=", h.rev)
}

// notHeld is a compare that never holds (no key has create revision -1).
func notHeld(dir string) coord.Cmp {
	return coord.Compare(coord.CreateRevision(dir+"\x00not-held"), "=", coord.Revision(-1))
}
