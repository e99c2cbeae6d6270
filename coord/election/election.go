// Package election elects one leader among candidates, on coord's public
// API only.
//
// Candidates queue under a key directory, in the fair queue coord/lock's
// Mutex uses too; the one whose key was created first leads. Each waiting
// candidate watches only the candidate just before it, so a leader's
// departure wakes one successor. A leader's term carries a
// fencing token (its key's create revision), strictly increasing with every
// new leader. Observe streams every change of leader, including the moments
// with no leader.
//
// A leader whose process dies is replaced once its session's TTL runs out
// (plus an election timeout for the cluster to commit the expiry); a leader
// that resigns, or closes its session or Node, is replaced at once.
//
// Run is leadership that heals itself, like Curator's LeaderSelector with
// auto-requeue: it campaigns, runs a function while leading, cancels the
// function's context the moment the term is lost, and campaigns again
// (with a new session when the old one was lost) until its context ends.
package election

import (
	"context"
	"errors"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/internal/queue"
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
	s    *coord.Session // nil for an Election made by Watcher
	n    *coord.Node
	dir  string
	slot queue.Slot
}

// errs are the errors the queue reports for an election.
var errs = &queue.Errors{Lost: ErrLost, NotHeld: ErrNotLeader}

// New returns a candidate for the election named name. It does no I/O.
func New(s *coord.Session, name string) *Election {
	return &Election{s: s, n: s.Node(), dir: queue.DirOf(name), slot: queue.Slot{E: errs, Busy: ErrAlreadyCampaigning}}
}

// Watcher returns an Election on n that only reads: Leader and Observe work
// without a session (a process that follows an election without standing
// in it needs no lease), while Campaign fails with ErrNotCandidate and
// Proclaim and Resign with ErrNotLeader. It does no I/O.
func Watcher(n *coord.Node, name string) *Election {
	return &Election{n: n, dir: queue.DirOf(name), slot: queue.Slot{E: errs, Busy: ErrAlreadyCampaigning}}
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
// Candidates are elected in the order they campaigned; each waits for the
// one just before it only. Errors: ErrAlreadyCampaigning, ErrNotCandidate,
// context errors, coord.ErrSessionExpired, ErrLost when the candidate's
// key was deleted while it waited, coord.ErrClosed when the Node closed,
// and those of coord's Put and Get.
func (e *Election) Campaign(ctx context.Context, value []byte) error {
	if e.s == nil {
		return ErrNotCandidate
	}
	return e.slot.Acquire(func() (*queue.Hold, error) { return queue.Acquire(ctx, e.s, e.dir, e.dir, value, errs) })
}

// term returns the current term's hold while it lasts.
func (e *Election) term() (*queue.Hold, bool) {
	h := e.slot.Held()
	if h == nil {
		return nil, false
	}
	select {
	case <-h.Done():
		return nil, false
	default:
		return h, true
	}
}

// Proclaim changes the leader's value without a new election: one write,
// watchers see an update. ErrNotLeader when this candidate does not lead.
func (e *Election) Proclaim(ctx context.Context, value []byte) error {
	h, ok := e.term()
	if !ok {
		return ErrNotLeader
	}
	r, err := e.s.Node().Txn(ctx).If(h.Owner()).Then(coord.OpPut(h.Key(), value, coord.WithLease(e.s.Lease()))).Commit()
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
// lead, or lost its leadership before the call.
func (e *Election) Resign(ctx context.Context) error { return e.slot.Release(ctx) }

// Fence returns this candidate's fencing token while it leads, else 0.
func (e *Election) Fence() coord.Revision {
	if h, ok := e.term(); ok {
		return h.Fence()
	}
	return 0
}

// IsLeader returns a compare that holds only while this term lasts, for
// writes guarded by leadership in a Txn.
func (e *Election) IsLeader() coord.Cmp {
	if h, ok := e.term(); ok {
		return h.Owner()
	}
	return queue.NotHeld(e.dir)
}

// Done is closed when the current term ends: Resign (Err nil) or loss (Err
// wraps ErrLost). nil before the first Campaign succeeds.
func (e *Election) Done() <-chan struct{} {
	if h := e.slot.Last(); h != nil {
		return h.Done()
	}
	return nil
}

// Err says why the current term ended; nil while leading or after Resign.
func (e *Election) Err() error {
	if h := e.slot.Last(); h != nil {
		return h.Err()
	}
	return nil
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
