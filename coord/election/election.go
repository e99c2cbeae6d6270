// Package election elects one leader among candidates, on coord's public
// API only.
//
// Candidates queue under a key directory; the one whose key was created
// first leads. Each waiting candidate watches only the candidate just before
// it, so a leader's departure wakes one successor. A leader's term carries a
// fencing token (its key's create revision), strictly increasing with every
// new leader. Observe streams every change of leader, including the moments
// with no leader.
//
// A leader whose process dies is replaced once its session's TTL runs out
// (plus an election timeout for the cluster to commit the expiry); a leader
// that resigns, or closes its session or Node, is replaced at once.
package election

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// Errors. Match them with errors.Is.
var (
	// ErrNoLeader: nobody leads the election right now.
	ErrNoLeader = errors.New("election: no leader")
	// ErrNotLeader: Proclaim or Resign by a candidate that does not lead.
	ErrNotLeader = errors.New("election: not the leader")
	// ErrAlreadyCampaigning: Campaign on an Election that is already
	// campaigning or leading.
	ErrAlreadyCampaigning = errors.New("election: already campaigning or leading")
	// ErrLost: leadership ended without Resign: the leader's key was deleted
	// or its session ended. Done is closed and Err returns it.
	ErrLost = errors.New("election: leadership lost")
	// ErrNotCandidate: Campaign on an Election made by Watcher, which has
	// no session to stand with.
	ErrNotCandidate = errors.New("election: a watcher cannot campaign")
)

// Election is one candidate in the election named by a key directory. Its
// methods are safe for concurrent use. One Election value campaigns for at
// most one term at a time.
type Election struct {
	s   *coord.Session // nil for an Election made by Watcher
	n   *coord.Node
	dir string

	mu     sync.Mutex
	busy   bool
	key    string
	rev    coord.Revision
	done   chan struct{}
	err    error
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a candidate for the election named name. It does no I/O.
func New(s *coord.Session, name string) *Election {
	dir := dirOf(name)
	return &Election{s: s, n: s.Node(), dir: dir}
}

// Watcher returns an Election on n that only reads: Leader and Observe work
// without a session (a process that follows an election without standing
// in it needs no lease), while Campaign fails with ErrNotCandidate and
// Proclaim and Resign with ErrNotLeader. It does no I/O.
func Watcher(n *coord.Node, name string) *Election {
	return &Election{n: n, dir: dirOf(name)}
}

func dirOf(name string) string {
	if name == "" || name[len(name)-1] != '/' {
		return name + "/"
	}
	return name
}

// Leader describes the leader of an election.
type Leader struct {
	Key   string
	Value []byte
	// Fence is the leader's fencing token: its key's create revision.
	Fence coord.Revision
	// Lease is the leader's session lease: its leadership ends with it.
	Lease coord.LeaseID
}

func leaderOf(kv *coord.KeyValue) *Leader {
	return &Leader{Key: kv.Key, Value: kv.Value, Fence: kv.CreateRevision, Lease: kv.Lease}
}

// Campaign blocks until this candidate leads, with value as the leader's
// value, or ctx or the session ends (the candidate then leaves the queue).
// Errors: ErrAlreadyCampaigning, ErrNotCandidate, context errors, coord.ErrSessionExpired,
// and those of coord's Put and Get.
func (e *Election) Campaign(ctx context.Context, value []byte) error {
	if e.s == nil {
		return ErrNotCandidate
	}
	e.mu.Lock()
	if e.busy {
		e.mu.Unlock()
		return ErrAlreadyCampaigning
	}
	e.busy = true
	e.mu.Unlock()
	err := e.campaign(ctx, value)
	if err != nil {
		e.mu.Lock()
		e.busy = false
		e.mu.Unlock()
	}
	return err
}

func (e *Election) campaign(ctx context.Context, value []byte) error {
	if err := e.s.Err(); err != nil {
		return fmt.Errorf("%w: %w", coord.ErrSessionExpired, err)
	}
	n := e.s.Node()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	key := fmt.Sprintf("%s%016x-%s", e.dir, uint64(e.s.Lease()), hex.EncodeToString(b[:]))
	r, err := n.Put(ctx, key, value, coord.WithLease(e.s.Lease()))
	if err != nil {
		if errors.Is(err, coord.ErrOutcomeUnknown) {
			e.remove(key)
		}
		return err
	}
	rev := r.Header.Revision
	for {
		g, err := n.Get(ctx, e.dir, coord.WithPrefix(), coord.WithMaxCreateRev(rev-1),
			coord.WithSort(coord.SortByCreateRevision, coord.SortDescend), coord.WithLimit(1))
		if err == nil && len(g.KVs) == 0 {
			if err = e.elected(ctx, key, rev); err == nil {
				return nil
			}
		}
		if err == nil {
			// The candidate's own key must still exist at the revision the
			// queue was read at; a deletion after it is caught by waitGone.
			var own *coord.GetResponse
			own, err = n.Get(ctx, key, coord.WithRev(g.Header.Revision))
			if err == nil && (len(own.KVs) == 0 || own.KVs[0].CreateRevision != rev) {
				err = fmt.Errorf("%w: the candidate's key was deleted while it waited", coord.ErrSessionExpired)
			}
		}
		if err == nil {
			err = e.waitGone(ctx, g.KVs[0].Key, key, g.Header.Revision)
			if err == nil {
				continue
			}
		}
		e.remove(key)
		return err
	}
}

func (e *Election) remove(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = e.s.Node().Delete(ctx, key)
}

// waitGone waits until pred is deleted; it fails if own is deleted first
// (the session's lease ended) or the session, or ctx, ends.
func (e *Election) waitGone(ctx context.Context, pred, own string, rev coord.Revision) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := e.s.Node()
	wp := n.Watch(wctx, pred, coord.WithRev(rev+1), coord.WithFilterPut())
	wo := n.Watch(wctx, own, coord.WithRev(rev+1), coord.WithFilterPut())
	for {
		select {
		case r, ok := <-wp:
			if !ok {
				return errors.Join(ctx.Err(), coord.ErrClosed)
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
		case r, ok := <-wo:
			if !ok {
				return errors.Join(ctx.Err(), coord.ErrClosed)
			}
			if len(r.Events) > 0 {
				return fmt.Errorf("%w: the candidate's key was deleted while it waited", coord.ErrSessionExpired)
			}
		case <-e.s.Done():
			return fmt.Errorf("%w: %w", coord.ErrSessionExpired, e.s.Err())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// elected checks the candidate's key is still there and starts watching it.
func (e *Election) elected(ctx context.Context, key string, rev coord.Revision) error {
	n := e.s.Node()
	g, err := n.Get(ctx, key)
	if err != nil {
		return err
	}
	if len(g.KVs) == 0 || g.KVs[0].CreateRevision != rev {
		return fmt.Errorf("%w: the candidate's key was deleted while it waited", coord.ErrSessionExpired)
	}
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	e.mu.Lock()
	e.key, e.rev, e.done, e.err, e.cancel = key, rev, done, nil, cancel
	e.mu.Unlock()
	w := n.Watch(wctx, key, coord.WithRev(g.Header.Revision+1), coord.WithFilterPut())
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		var cause error
		select {
		case r, ok := <-w:
			switch {
			case !ok && wctx.Err() != nil:
				return
			case !ok:
				cause = coord.ErrClosed
			case r.Err() != nil:
				cause = r.Err()
			default:
				cause = fmt.Errorf("key %s deleted", key)
			}
		case <-e.s.Done():
			cause = e.s.Err()
		case <-wctx.Done():
			return
		}
		e.end(done, fmt.Errorf("%w: %w", ErrLost, cause))
	}()
	return nil
}

func (e *Election) end(done chan struct{}, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done != done {
		return // a later term
	}
	select {
	case <-done:
		return
	default:
	}
	e.err = err
	close(done)
	e.busy = false
}

func (e *Election) term() (string, coord.Revision, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.key == "" || e.err != nil {
		return "", 0, false
	}
	select {
	case <-e.done:
		return "", 0, false
	default:
	}
	return e.key, e.rev, true
}

// Proclaim changes the leader's value without a new election: one write,
// watchers see an update. ErrNotLeader when this candidate does not lead.
func (e *Election) Proclaim(ctx context.Context, value []byte) error {
	key, rev, ok := e.term()
	if !ok {
		return ErrNotLeader
	}
	r, err := e.s.Node().Txn(ctx).If(coord.Compare(coord.CreateRevision(key), "=", rev)).
		Then(coord.OpPut(key, value, coord.WithLease(e.s.Lease()))).Commit()
	if err != nil {
		return err
	}
	if !r.Succeeded {
		return ErrNotLeader
	}
	return nil
}

// Resign gives up leadership (the next candidate is elected at once) and
// ends the term with a nil Err. ErrNotLeader when this candidate does not
// lead.
func (e *Election) Resign(ctx context.Context) error {
	e.mu.Lock()
	key, rev, done, cancel := e.key, e.rev, e.done, e.cancel
	e.mu.Unlock()
	if key == "" {
		return ErrNotLeader
	}
	cancel()
	e.wg.Wait()
	r, err := e.s.Node().Txn(ctx).If(coord.Compare(coord.CreateRevision(key), "=", rev)).
		Then(coord.OpDelete(key)).Commit()
	if err != nil {
		return err
	}
	e.end(done, nil)
	e.mu.Lock()
	e.key, e.busy = "", false
	e.mu.Unlock()
	if !r.Succeeded {
		return ErrNotLeader
	}
	return nil
}

// Fence returns this candidate's fencing token while it leads, else 0.
func (e *Election) Fence() coord.Revision {
	_, rev, _ := e.term()
	return rev
}

// IsLeader returns a compare that holds only while this term lasts, for
// writes guarded by leadership in a Txn.
func (e *Election) IsLeader() coord.Cmp {
	key, rev, ok := e.term()
	if !ok {
		return coord.Compare(coord.CreateRevision(e.dir+"\x00not-leader"), "=", coord.Revision(-1))
	}
	return coord.Compare(coord.CreateRevision(key), "=", rev)
}

// Done is closed when the current term ends: Resign (Err nil) or loss (Err
// wraps ErrLost). nil before the first Campaign succeeds.
func (e *Election) Done() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.done
}

// Err says why the current term ended; nil while leading or after Resign.
func (e *Election) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// Leader returns the current leader (linearizable). ErrNoLeader when none.
func (e *Election) Leader(ctx context.Context) (*Leader, error) {
	g, err := e.n.Get(ctx, e.dir, coord.WithPrefix(),
		coord.WithSort(coord.SortByCreateRevision, coord.SortAscend), coord.WithLimit(1))
	if err != nil {
		return nil, err
	}
	if len(g.KVs) == 0 {
		return nil, ErrNoLeader
	}
	return leaderOf(g.KVs[0]), nil
}
