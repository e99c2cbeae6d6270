package raftnode

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/client"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Shard is this member's replica of one Raft group.
type Shard struct {
	h     *Host
	Index int    // 0-based, as users see it
	id    uint64 // dragonboat shard ID (Index+1)

	machine atomic.Pointer[sm.Machine]
	// clients proposes writes, one request each at a time (Propose).
	clients chan *requestClient
	// keepAlives is a lane of request clients for lease keep-alives (which
	// also take free write clients), so that they never wait behind writes:
	// a member flooded with writes would otherwise let its sessions expire,
	// and lose their locks and leaderships.
	keepAlives chan *requestClient
	// noop is the shard's dragonboat NO-OP session: never changed, so
	// every proposal shares it.
	noop *client.Session
	// recovered: the state machine loaded a snapshot since it started.
	recovered atomic.Bool
	// logChecked: a leader's heartbeat showed this replica's log holds
	// what it had acknowledged (screen), since it last started.
	logChecked atomic.Bool
	// leaderEpoch is closed, and replaced, when this member learns of a
	// new leader of the shard (leaderListener): requests forwarded to the
	// old one may be lost, and are sent again at once (leaderChanged).
	leaderEpoch atomic.Pointer[chan struct{}]
	// leader is the last leader ID seen (0 for none); leaderChanges counts
	// changes to another member.
	leader, leaderChanges atomic.Uint64
}

// View returns the replica's latest state, with no network: what a
// serializable read sees. It is nil only before the replica started.
func (s *Shard) View() *sm.View {
	if m := s.machine.Load(); m != nil {
		return m.View()
	}
	return nil
}

// Usage returns the replica's store size as the quota counts it and its
// NOSPACE alarm, as of the last batch applied (0, false before the
// replica starts). Cheap: it takes no View.
func (s *Shard) Usage() (bytes int64, noSpace bool) {
	if m := s.machine.Load(); m != nil {
		return m.Usage()
	}
	return 0, false
}

// Revisions returns the replica's revision and compaction revision, as of
// the last batch applied (0, 0 before the replica starts). Cheap: it takes
// no View.
func (s *Shard) Revisions() (rev, compactRev int64) {
	if m := s.machine.Load(); m != nil {
		return m.Revisions()
	}
	return 0, 0
}

// Machine returns the shard's state machine (for test hooks).
func (s *Shard) Machine() *sm.Machine { return s.machine.Load() }

// Leader returns the shard's leader and term as this member knows them;
// ok is false when it knows none, or the member is closed.
func (s *Shard) Leader() (leader, term uint64, ok bool) {
	nh := s.h.host.Load()
	if nh == nil {
		return 0, 0, false
	}
	l, t, ok, err := nh.GetLeaderID(s.id)
	if err != nil || !ok || l == 0 {
		return 0, t, false
	}
	return l, t, true
}

// Term returns the shard's Raft term as this member knows it.
func (s *Shard) Term() uint64 {
	_, t, _ := s.Leader()
	return t
}

// Leads reports whether this member leads the shard.
func (s *Shard) Leads() bool {
	l, _, ok := s.Leader()
	return ok && l == s.h.cfg.ReplicaID
}

// LeaderChanges counts the times this member saw the shard's leader change
// to another member.
func (s *Shard) LeaderChanges() uint64 { return s.leaderChanges.Load() }

// epoch returns a channel closed when this member next learns of a new
// leader of the shard.
func (s *Shard) epoch() <-chan struct{} { return *s.leaderEpoch.Load() }

// leaderChanged wakes the requests waiting on the current epoch.
func (s *Shard) leaderChanged() {
	ch := make(chan struct{})
	close(*s.leaderEpoch.Swap(&ch))
}

// Read returns a view of the shard: after a ReadIndex round (linearizable),
// or this replica's latest (serializable, no network). It blocks until the
// round completes, ctx ends, or the member closes (a ctx without deadline
// gets Config.RequestTimeout). Errors: see attempt.final.
func (s *Shard) Read(ctx context.Context, serializable bool) (*sm.View, error) {
	h := s.h
	if err := h.Check(ctx); err != nil {
		return nil, err
	}
	if serializable || skipReadIndex(h.cfg.Name) {
		return s.View(), nil
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(h.cfg.RequestTimeout)
	}
	timeouts := 0
	for n := 0; ; n++ {
		// A ReadIndex request forwarded to a leader can be lost (a leader
		// change, a member joining) and dragonboat then waits for the whole
		// deadline. Reads are idempotent: bound each attempt and retry.
		v, err := s.readOnce(ctx, min(time.Until(deadline), h.readAttemptTimeout(timeouts)))
		if err == nil {
			return v, nil
		}
		a := attempt{err: err, n: n, shard: s.Index,
			expired: ctx.Err() != nil || time.Until(deadline) < h.cfg.HeartbeatInterval}
		if a.retryNow() {
			if !errors.Is(err, errLeaderChanged) {
				timeouts++
			}
			continue
		}
		if a.retryLater() && h.Backoff(ctx, n) {
			continue
		}
		a.ctxErr = ctx.Err()
		if h.Closed() {
			a.closed = h.ErrClosed()
		}
		if a.needsLeader() {
			_, _, a.leaderKnown = s.Leader()
		}
		return nil, a.final()
	}
}

// readOnce makes one ReadIndex round, bounded by timeout (rounded down to
// Raft ticks) and by ctx, and returns the replica's view once it has
// applied the read index. Its errors are dragonboat's, as SyncRead reports
// them. Like proposeOnce, it costs no context or timer.
func (s *Shard) readOnce(ctx context.Context, timeout time.Duration) (*sm.View, error) {
	if timeout < s.h.cfg.HeartbeatInterval {
		return nil, dragonboat.ErrTimeoutTooSmall
	}
	changed := s.epoch()
	rs, err := s.h.nh.ReadIndex(s.id, timeout)
	if err != nil {
		return nil, err
	}
	if _, err := awaitRequest(ctx, rs, changed); err != nil {
		return nil, err
	}
	v, err := s.h.nh.ReadLocalNode(rs, nil)
	rs.Release()
	if err != nil {
		return nil, err
	}
	return v.(*sm.View), nil
}

// readAttemptTimeout bounds a ReadIndex round after timeouts earlier rounds
// timed out: a healthy one takes a network round trip; a leader change
// takes about an election timeout. The first rounds are short, because the
// usual loss is a request made in the instant a replica learns of its
// leader (a member that just started or joined, whose Ready would
// otherwise wait out a whole bound); later ones grow to two election
// timeouts.
func (h *Host) readAttemptTimeout(timeouts int) time.Duration {
	long := max(2*h.cfg.ElectionTimeout, 500*time.Millisecond)
	return min(long, max(5*h.cfg.HeartbeatInterval, 250*time.Millisecond)<<min(timeouts, 8))
}

// maxInFlight bounds the writes one member has in flight per shard. Past
// it, writers wait here for a turn, within their context, instead of piling
// into dragonboat's queues, which drop what does not fit without telling the
// proposer. With maxKeepAlivesInFlight it is also the number of request
// clients (sm.Command.Client) a member uses per shard, which the state
// machine's request table must hold for every member at once
// (sm.maxRequests is 16,384).
const maxInFlight = 256

// maxKeepAlivesInFlight is the lane of request clients kept for lease
// keep-alives, so that they never queue behind maxInFlight writes.
const maxKeepAlivesInFlight = 16

// requestClient proposes one request at a time to a shard, numbering them
// with increasing seq, so the state machine can tell a retry of its
// latest request from a new one.
type requestClient struct {
	id   uint64
	seq  uint64
	pool chan *requestClient // the pool it returns to
}

// newRequestClients returns a pool of n request clients, each with a random
// ID: IDs are not reused across restarts or members.
func newRequestClients(n int) chan *requestClient {
	ch := make(chan *requestClient, n)
	for range n {
		id := rand.Uint64()
		for id == 0 {
			id = rand.Uint64()
		}
		ch <- &requestClient{id: id, pool: ch}
	}
	return ch
}

// Propose commits cmd to the shard and returns its result once applied
// here. It blocks until then, until ctx ends (a ctx without deadline gets
// Config.RequestTimeout), or until the member closes. Errors: ErrNoSpace
// while the disk is nearly full (for commands that grow the log),
// ErrRequestTooLarge, and those of attempt.final.
//
// Each attempt is bounded: dragonboat silently drops a proposal that a
// follower forwards to a leader whose queue is full, or that a leader loses
// as it steps down, and the proposer would otherwise wait for its whole
// deadline. An attempt that times out is proposed again under the same
// request ID, which the state machine applies at most once.
//
// Attempts use dragonboat's asynchronous Propose, whose timeout runs on
// Raft ticks: a write costs no context or timer of its own (they were a
// tenth of all CPU under load), only the caller's deadline, or
// Config.RequestTimeout when it has none.
func (s *Shard) Propose(ctx context.Context, cmd *sm.Command) (*sm.Result, error) {
	h := s.h
	if err := h.Check(ctx); err != nil {
		return nil, err
	}
	if h.diskLow.Load() && growsLog(cmd.Kind) {
		return nil, fmt.Errorf("%w: the member's disk is nearly full (below Config.DiskReserve)", errdefs.ErrNoSpace)
	}
	start := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = start.Add(h.cfg.RequestTimeout)
	}
	rc, err := s.requestClient(ctx, cmd.Kind == sm.CmdKeepAlive)
	if err != nil {
		return nil, err
	}
	// The next request gets a new seq even if this one's outcome stays
	// unknown: a late copy of it is then refused as stale.
	rc.seq++
	defer func() { rc.pool <- rc }()
	c := *cmd
	c.Client, c.Seq = rc.id, rc.seq
	b := sm.EncodeCommand(&c)
	if len(b) > h.cfg.MaxRequestBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errdefs.ErrRequestTooLarge, len(b), h.cfg.MaxRequestBytes)
	}
	done := func(err error) {
		h.proposals.Add(1)
		h.propose.Observe(time.Since(start))
		if err != nil {
			h.failures.Add(1)
		}
	}
	sent := false // an attempt may have entered the log
	for n := 0; ; n++ {
		data, err := s.proposeOnce(ctx, b, min(time.Until(deadline), proposeAttemptTimeout(h.cfg.ElectionTimeout)))
		if err == nil {
			done(nil)
			res, derr := sm.DecodeResult(data)
			if derr != nil {
				return nil, fmt.Errorf("coord: shard %d: undecodable result: %w", s.Index, derr)
			}
			return res, nil
		}
		c := classify(err)
		sent = sent || c == classTimedOut || c == classCanceled
		a := attempt{err: err, write: true, n: n, sent: sent, shard: s.Index,
			expired: ctx.Err() != nil || time.Until(deadline) < h.cfg.HeartbeatInterval}
		if a.retryNow() {
			h.retries.Add(1)
			continue
		}
		if a.retryLater() && h.Backoff(ctx, n) {
			continue
		}
		if c != classDropped || sent {
			done(err)
		}
		a.ctxErr = ctx.Err()
		if h.Closed() {
			a.closed = h.ErrClosed()
		}
		return nil, a.final()
	}
}

// proposeOnce makes one attempt to commit b, bounded by timeout (rounded
// down to Raft ticks) and by ctx, and returns the result's data. Its errors
// are dragonboat's, as SyncPropose reports them.
func (s *Shard) proposeOnce(ctx context.Context, b []byte, timeout time.Duration) ([]byte, error) {
	if timeout < s.h.cfg.HeartbeatInterval {
		return nil, dragonboat.ErrTimeoutTooSmall
	}
	changed := s.epoch()
	rs, err := s.h.nh.Propose(s.noop, b, timeout)
	if err != nil {
		return nil, err
	}
	r, err := awaitRequest(ctx, rs, changed)
	if err != nil {
		return nil, err
	}
	rs.Release()
	return r.GetResult().Data, nil
}

// requestClient takes one of the shard's request clients, waiting within
// ctx (or Config.RequestTimeout) when all are busy. A write takes one of
// the write clients; a keep-alive takes whichever is free first of its own
// lane's and the writes', so it never waits behind writes and is not held
// to its lane's size when writes leave clients free.
func (s *Shard) requestClient(ctx context.Context, keepAlive bool) (*requestClient, error) {
	var lane chan *requestClient // nil for a write: never ready
	if keepAlive {
		lane = s.keepAlives
	}
	select {
	case rc := <-lane:
		return rc, nil
	case rc := <-s.clients:
		return rc, nil
	default:
	}
	wctx, cancel := s.h.WithTimeout(ctx)
	defer cancel()
	select {
	case rc := <-lane:
		return rc, nil
	case rc := <-s.clients:
		return rc, nil
	case <-wctx.Done():
		return nil, fmt.Errorf("coord: shard %d: waiting behind %d requests in flight: %w", s.Index, cap(s.clients)+cap(lane), wctx.Err())
	case <-s.h.ctx.Done():
		return nil, s.h.ErrClosed()
	}
}

// proposeAttemptTimeout bounds one attempt of a write: a healthy one takes
// a round trip and an fsync or two; a leader change takes about an election
// timeout.
func proposeAttemptTimeout(election time.Duration) time.Duration {
	return max(2*election, time.Second)
}

// Membership is a shard's membership, committed through Raft.
type Membership struct {
	Voters, Observers map[uint64]string // replica ID -> RaftAddress
	Removed           map[uint64]bool
}

// Has reports whether replica id is a member: a voter if voter, else an
// observer.
func (m *Membership) Has(id uint64, voter bool) bool {
	if voter {
		_, ok := m.Voters[id]
		return ok
	}
	_, ok := m.Observers[id]
	return ok
}

// Membership reads the shard's membership after a ReadIndex round
// (linearizable). It blocks like Read, and fails like it.
func (s *Shard) Membership(ctx context.Context) (*Membership, error) {
	h := s.h
	if err := h.Check(ctx); err != nil {
		return nil, err
	}
	timeouts := 0
	for n := 0; ; n++ {
		// Like a linearizable read, this is a ReadIndex round that can be
		// lost around a leader or membership change: bound each attempt
		// and retry.
		actx, acancel := context.WithTimeout(ctx, h.readAttemptTimeout(timeouts))
		m, err := h.nh.SyncGetShardMembership(actx, s.id)
		acancel()
		if err == nil {
			removed := map[uint64]bool{}
			for id := range m.Removed {
				removed[id] = true
			}
			return &Membership{Voters: m.Nodes, Observers: m.NonVotings, Removed: removed}, nil
		}
		c := classify(err)
		if c == classTimedOut && ctx.Err() == nil {
			timeouts++
			continue
		}
		if c == classDropped && h.Backoff(ctx, n) {
			continue
		}
		return nil, translate(ctx, err, false)
	}
}

// AddReplica adds replica id at addr to the shard, as a voter or an
// observer; for an observer already in the shard with voter, it promotes
// it. It blocks until the change is committed or ctx ends (see change).
func (s *Shard) AddReplica(ctx context.Context, id uint64, addr string, voter bool) error {
	return s.change(ctx, func(m *Membership) bool { return m.Has(id, voter) }, func(ctx context.Context) error {
		if voter {
			return s.h.nh.SyncRequestAddReplica(ctx, s.id, id, addr, 0)
		}
		return s.h.nh.SyncRequestAddNonVoting(ctx, s.id, id, addr, 0)
	})
}

// RemoveReplica removes replica id from the shard. It blocks until the
// change is committed or ctx ends (see change).
func (s *Shard) RemoveReplica(ctx context.Context, id uint64) error {
	gone := func(m *Membership) bool { return !m.Has(id, true) && !m.Has(id, false) }
	return s.change(ctx, gone, func(ctx context.Context) error {
		return s.h.nh.SyncRequestDeleteReplica(ctx, s.id, id, 0)
	})
}

// change runs the membership change f on the shard until done holds for
// the shard's membership, retrying while another change is in flight or
// there is no leader yet. Each attempt is bounded like a ReadIndex round:
// dragonboat's leader drops a change proposed while another is pending,
// and a member that forwarded it is never told, so it would wait for its
// whole context (several members admitting observers at once hit this).
// After an attempt that timed out or was turned away, the membership is
// read, since the change may have been made after all, and the change is
// proposed again while ctx lasts. Errors are those of a write.
func (s *Shard) change(ctx context.Context, done func(*Membership) bool, f func(context.Context) error) error {
	h := s.h
	timeouts := 0
	for n := 0; ; n++ {
		actx, cancel := context.WithTimeout(ctx, h.readAttemptTimeout(timeouts))
		err := f(actx)
		cancel()
		if err == nil {
			return nil
		}
		c := classify(err)
		timedOut := c == classTimedOut || errors.Is(err, context.DeadlineExceeded)
		if ctx.Err() != nil || !timedOut && c != classDropped && !errors.Is(err, dragonboat.ErrRejected) {
			return translate(ctx, err, true)
		}
		if timedOut {
			timeouts++
		}
		if m, merr := s.Membership(ctx); merr == nil && done(m) {
			return nil
		}
		if !h.Backoff(ctx, n) {
			return translate(ctx, err, true)
		}
	}
}

// TransferLeader asks the shard's leader to hand the leadership to replica
// id; it does not wait. The request is lost if the shard has no leader or
// the leader drops it: ask again.
func (s *Shard) TransferLeader(id uint64) error {
	nh := s.h.host.Load()
	if nh == nil {
		return s.h.ErrClosed()
	}
	return nh.RequestLeaderTransfer(s.id, id)
}
