package sm

import (
	"bufio"
	"hash/fnv"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	dbsm "github.com/lni/dragonboat/v4/statemachine"
)

// LeaseInfo describes a lease held by a shard.
type LeaseInfo struct {
	ID    int64
	TTL   int64  // ms
	Renew uint64 // Raft index of the grant or last keep-alive
}

// Listener learns what apply did. Its methods run on the apply goroutine
// after the batch is visible through Machine.View; they must be quick and
// must not block (hand work to other goroutines). They are notifications
// only: nothing they do may feed back into the replicated state.
type Listener interface {
	// Applied reports the revision after a batch and the events it
	// produced, ordered by revision.
	Applied(rev int64, events []Event)
	// LeaseRenewed reports a grant, keep-alive or materialisation, applied at
	// Raft index renew.
	LeaseRenewed(id, ttl int64, renew uint64)
	// LeaseGone reports a revoke or expiry.
	LeaseGone(id int64)
	// LeasesReset reports the complete lease table after a snapshot was
	// recovered; every earlier notification is void.
	LeasesReset(leases []LeaseInfo)
	// Recovered reports that the state was replaced by a snapshot's: the
	// revision may have jumped forward with no events. Anyone following
	// events must re-read what they missed from v's history.
	Recovered(v *View)
	// HashCheck reports that the integrity check at Raft index index
	// started: v is the state as of that entry, to hash (v.Hash, which
	// takes time in proportion to the store: not on the apply goroutine)
	// and report in a CmdHashReport.
	HashCheck(index uint64, v *View)
}

type applyCtx struct {
	txnCtx
	leaseRenewed []lease
	leaseGone    []int64
}

// Machine is one shard replica's state machine. It implements dragonboat's
// IConcurrentStateMachine: Update runs on one goroutine at a time, Lookup and
// SaveSnapshot run concurrently with it and only ever touch immutable Views.
//
// Views are taken lazily. Cloning the state is O(1), but after a clone the
// next write to every B-tree node copies that node, which under a steady
// stream of writes cost more CPU than the writes themselves when a view was
// published after every batch. So a batch only marks the published view
// stale, and the first View call after it clones the state once.
type Machine struct {
	mu       sync.Mutex // held while st changes, and to clone it
	st       *state
	stale    atomic.Bool // st is newer than view
	view     atomic.Pointer[View]
	listener Listener
	// cmd is where Update decodes each entry (under mu): nothing applied
	// keeps a pointer into it, so its slices serve every entry.
	cmd Command
	// bytes and noSpace are the state's, as of the last batch applied:
	// Usage reads them without taking a View (which would make the next
	// writes copy the trees' nodes).
	bytes   atomic.Int64
	noSpace atomic.Bool
	// rev and compactRev are the state's, as of the last batch applied,
	// for Revisions.
	rev, compactRev atomic.Int64
}

var _ dbsm.IConcurrentStateMachine = (*Machine)(nil)

// New returns an empty machine. l may be nil.
func New(l Listener) *Machine {
	m := &Machine{st: newState(), listener: l}
	m.view.Store(m.st.clone())
	m.published()
	return m
}

// View returns a view of every batch applied so far. It is safe to call
// from any goroutine. It returns at once unless a batch was applied since
// the last view was taken; it then waits for any batch being applied to end
// and takes a new view, which later calls share.
func (m *Machine) View() *View {
	if !m.stale.Load() {
		return m.view.Load()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stale.Load() {
		m.view.Store(m.st.clone())
		m.stale.Store(false)
	}
	return m.view.Load()
}

// Usage returns the store's bytes as the quota counts them and whether its
// NOSPACE alarm is raised, as of the last batch applied. It is cheap and
// safe to call from any goroutine: it takes no View.
func (m *Machine) Usage() (bytes int64, noSpace bool) { return m.bytes.Load(), m.noSpace.Load() }

// Revisions returns the store's revision and compaction revision, as of
// the last batch applied. It is cheap and safe to call from any goroutine:
// it takes no View.
func (m *Machine) Revisions() (rev, compactRev int64) { return m.rev.Load(), m.compactRev.Load() }

// published stores what Usage and Revisions report; m.mu is held.
func (m *Machine) published() {
	m.bytes.Store(m.st.bytes)
	m.noSpace.Store(m.st.noSpace)
	m.rev.Store(m.st.rev)
	m.compactRev.Store(m.st.compactRev)
}

// batch is what a batch's entries produced for the listener.
type batch struct {
	events  []Event
	renewed []lease
	gone    []int64
	checks  []checkView
}

// checkView is a view of the state as of a CmdHashCheck, for the replica
// to hash.
type checkView struct {
	index uint64
	view  *View
}

// Update applies a batch of committed entries.
func (m *Machine) Update(entries []dbsm.Entry) ([]dbsm.Entry, error) {
	var b batch
	m.mu.Lock()
	for i := range entries {
		e := &entries[i]
		res, data := m.applyEntry(e.Index, e.Cmd, &b)
		e.Result = dbsm.Result{Value: uint64(res.Code), Data: data}
	}
	rev := m.st.rev
	m.published()
	m.stale.Store(true)
	m.mu.Unlock()
	if l := m.listener; l != nil {
		for _, le := range b.renewed {
			l.LeaseRenewed(le.id, le.ttl, le.renew)
		}
		for _, id := range b.gone {
			l.LeaseGone(id)
		}
		l.Applied(rev, b.events)
		for _, c := range b.checks {
			l.HashCheck(c.index, c.view)
		}
	}
	return entries, nil
}

// Apply applies one encoded command at Raft index index and returns its
// result and events. It is the pure core of Update, exported for tests.
func (m *Machine) Apply(index uint64, cmd []byte) (*Result, []Event) {
	var b batch
	m.mu.Lock()
	res, _ := m.applyEntry(index, cmd, &b)
	m.published()
	m.stale.Store(true)
	m.mu.Unlock()
	return res, b.events
}

// applyEntry applies one entry and returns its result, decoded and encoded.
func (m *Machine) applyEntry(index uint64, raw []byte, b *batch) (*Result, []byte) {
	s := m.st
	s.applied = index
	cmd := &m.cmd
	if err := decodeCommandInto(cmd, raw); err != nil {
		res := &Result{Code: CodeBadCommand, Revision: s.rev}
		return res, EncodeResult(res)
	}
	if cmd.Client != 0 {
		if r, ok := s.requests.Get(request{client: cmd.Client}); ok && cmd.Seq <= r.seq {
			// A retry, or a copy of a request overtaken by a later one.
			res := &Result{Code: CodeStale, Revision: s.rev}
			if cmd.Seq == r.seq {
				res.Code = CodeResultLost
				if r.result != nil {
					if dec, err := DecodeResult(r.result); err == nil {
						return dec, r.result
					}
				}
			}
			return res, EncodeResult(res)
		}
	}
	// The command's events are appended to the batch's in place.
	start := len(b.events)
	t := &applyCtx{txnCtx: txnCtx{rev: s.rev + 1, events: b.events}}
	res := s.apply(t, cmd, index)
	if t.wrote {
		s.rev = t.rev
	}
	res.Revision = s.rev
	// Events of one revision go out in key order, the order history
	// (byRev) replays them in, so live and catching-up watchers agree.
	if evs := t.events[start:]; len(evs) > 1 {
		slices.SortStableFunc(evs, func(a, b Event) int { return strings.Compare(a.KV.Key, b.KV.Key) })
	}
	b.events = t.events
	b.renewed = append(b.renewed, t.leaseRenewed...)
	b.gone = append(b.gone, t.leaseGone...)
	if cmd.Kind == CmdHashCheck && res.Code == CodeOK {
		// The state as of this entry, whatever the batch applies after
		// it: a clone is O(1).
		b.checks = append(b.checks, checkView{index: index, view: s.clone()})
	}
	data := EncodeResult(res)
	// Only a request that may have changed the state is remembered: one
	// refused changed nothing, so applying a retry of it is safe.
	if cmd.Client != 0 && res.Code == CodeOK {
		s.remember(request{client: cmd.Client, seq: cmd.Seq, index: index, result: data})
	}
	return res, data
}

func (s *state) apply(t *applyCtx, cmd *Command, index uint64) *Result {
	if len(s.corrupt) > 0 && changesStore(cmd) {
		return &Result{Code: CodeCorrupt}
	}
	switch cmd.Kind {
	case CmdTxn:
		if dupKeys(&cmd.Txn) {
			return &Result{Code: CodeDuplicateKey}
		}
		if s.noSpace && HasPut(&cmd.Txn) {
			return &Result{Code: CodeNoSpace}
		}
		return s.applyTxn(t, &cmd.Txn, index)
	case CmdAlarm:
		switch {
		case cmd.Alarm == AlarmNoSpace:
			s.noSpace = cmd.Activate
		case cmd.Alarm == AlarmCorrupt && !cmd.Activate:
			s.clearCorrupt()
		default: // a CORRUPT alarm is raised by reports only
			return &Result{Code: CodeBadCommand}
		}
		return &Result{}
	case CmdHashCheck:
		s.startCheck(index)
		return &Result{}
	case CmdHashReport:
		s.report(cmd.Check, cmd.Replica, cmd.Hash)
		return &Result{}
	case CmdCompact:
		switch {
		case cmd.Revision > s.rev:
			return &Result{Code: CodeFutureRevision}
		case cmd.Revision <= s.compactRev:
			return &Result{Code: CodeCompacted}
		}
		s.compact(cmd.Revision)
		return &Result{}
	case CmdGrant:
		if cmd.LeaseID <= 0 || cmd.TTL <= 0 {
			return &Result{Code: CodeBadCommand}
		}
		if s.hasLease(cmd.LeaseID) {
			return &Result{Code: CodeLeaseExists}
		}
		if s.noSpace {
			return &Result{Code: CodeNoSpace}
		}
		l := lease{id: cmd.LeaseID, ttl: cmd.TTL, renew: index}
		s.leases.ReplaceOrInsert(l)
		s.bytes += leaseOverhead
		t.leaseRenewed = append(t.leaseRenewed, l)
		return &Result{TTL: l.ttl}
	case CmdKeepAlive:
		l, ok := s.leases.Get(lease{id: cmd.LeaseID})
		if !ok {
			return &Result{Code: CodeLeaseNotFound}
		}
		l.renew = index
		s.leases.ReplaceOrInsert(l)
		t.leaseRenewed = append(t.leaseRenewed, l)
		return &Result{TTL: l.ttl}
	case CmdRevoke:
		if !s.hasLease(cmd.LeaseID) {
			return &Result{Code: CodeLeaseNotFound}
		}
		s.revokeLease(t, cmd.LeaseID)
		return &Result{}
	case CmdMember:
		if cmd.Member.ID == 0 || cmd.Member.Name == "" {
			return &Result{Code: CodeBadCommand}
		}
		s.members.ReplaceOrInsert(cmd.Member)
		return &Result{}
	case CmdExpire:
		for _, it := range cmd.Expire {
			if l, ok := s.leases.Get(lease{id: it.ID}); ok && l.renew == it.Renew {
				s.revokeLease(t, it.ID)
			}
		}
		return &Result{}
	}
	return &Result{Code: CodeBadCommand}
}

// HasPut reports whether either branch of txn puts a key: whether it may
// grow the store.
func HasPut(txn *Txn) bool {
	for _, ops := range [][]Op{txn.Then, txn.Else} {
		for i := range ops {
			if ops[i].Kind == OpPut {
				return true
			}
		}
	}
	return false
}

// dupKeys reports whether one branch of a Txn writes a key twice: two puts,
// or a put inside a range the branch deletes. etcd refuses such a Txn: its
// outcome, and the events it produces, would depend on op order.
func dupKeys(txn *Txn) bool {
	for _, ops := range [][]Op{txn.Then, txn.Else} {
		seen := map[string]bool{}
		for i := range ops {
			if ops[i].Kind != OpPut {
				continue
			}
			if seen[ops[i].Key] {
				return true
			}
			seen[ops[i].Key] = true
		}
		for i := range ops {
			if ops[i].Kind != OpDelete {
				continue
			}
			for k := range seen {
				if inRange(k, ops[i].Key, ops[i].End) {
					return true
				}
			}
		}
	}
	return false
}

// Lookup returns the latest View; the caller reads from it. dragonboat calls
// it after a ReadIndex completes, which makes the read linearizable.
func (m *Machine) Lookup(interface{}) (interface{}, error) { return m.View(), nil }

// PrepareSnapshot captures the current view; Update is not running.
func (m *Machine) PrepareSnapshot() (interface{}, error) { return m.View(), nil }

// SaveSnapshot writes the captured view while Update goes on.
func (m *Machine) SaveSnapshot(ctx interface{}, w io.Writer, _ dbsm.ISnapshotFileCollection, done <-chan struct{}) error {
	return ctx.(*View).WriteTo(w, done)
}

// RecoverFromSnapshot replaces the state with the snapshot's.
func (m *Machine) RecoverFromSnapshot(r io.Reader, _ []dbsm.SnapshotFile, _ <-chan struct{}) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	st, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.st = st
	v := st.clone()
	m.view.Store(v)
	m.published()
	m.stale.Store(false)
	m.mu.Unlock()
	if m.listener != nil {
		m.listener.LeasesReset(v.Leases())
		m.listener.Recovered(v)
	}
	return nil
}

// Close releases nothing: the state is plain memory.
func (m *Machine) Close() error { return nil }

// ErrStopped is returned by WriteTo when done closes mid-way.
var ErrStopped = dbsm.ErrSnapshotStopped

const snapshotMagic = "CKSN"

// WriteTo encodes the view as a snapshot. It stops early, returning
// ErrStopped, when done is closed.
func (v *View) WriteTo(w io.Writer, done <-chan struct{}) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	e := &encoder{b: make([]byte, 0, 64<<10)}
	flush := func() error {
		_, err := bw.Write(e.b)
		e.b = e.b[:0]
		return err
	}
	e.b = append(e.b, snapshotMagic...)
	e.u8(snapshotVersion)
	e.svar(v.st.rev)
	e.svar(v.st.compactRev)
	e.uvar(v.st.applied)
	e.uvar(uint64(v.st.leases.Len()))
	v.st.leases.Ascend(func(l lease) bool {
		e.svar(l.id)
		e.svar(l.ttl)
		e.uvar(l.renew)
		return true
	})
	e.uvar(uint64(v.st.members.Len()))
	v.st.members.Ascend(func(m MemberRecord) bool {
		e.uvar(m.ID)
		e.str(m.Name)
		e.str(m.Address)
		return true
	})
	e.uvar(uint64(v.st.requests.Len()))
	v.st.requests.Ascend(func(r request) bool {
		e.uvar(r.client)
		e.uvar(r.seq)
		e.uvar(r.index)
		e.flag(r.result != nil)
		e.bytes(r.result)
		return true
	})
	e.flag(v.st.noSpace)
	encodeIntegrity(e, &v.st)
	// Every version, live or past, in key order and newest first: the
	// layout of snapshot versions 1 and 2, from before live versions were
	// kept apart from the history.
	e.uvar(uint64(v.st.cur.Len() + v.st.hist.Len()))
	var err error
	n := 0
	v.st.eachVersion(func(key string, rev int64, kv *KV) bool {
		e.str(key)
		e.svar(rev)
		if kv == nil {
			e.u8(0)
		} else {
			e.u8(1)
			e.bytes(kv.Value)
			e.svar(kv.CreateRevision)
			e.svar(kv.Version)
			e.svar(kv.Lease)
		}
		if len(e.b) >= 60<<10 {
			if err = flush(); err != nil {
				return false
			}
		}
		n++
		if n%4096 == 0 {
			select {
			case <-done:
				err = ErrStopped
				return false
			default:
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	return bw.Flush()
}

func decodeSnapshot(b []byte) (*state, error) {
	if len(b) < len(snapshotMagic) || string(b[:len(snapshotMagic)]) != snapshotMagic {
		return nil, errDecode
	}
	d := &decoder{b: b[len(snapshotMagic):]}
	version := d.u8()
	if version < codecVersion || version > snapshotVersion {
		return nil, errDecode
	}
	s := newState()
	s.rev = d.svar()
	s.compactRev = d.svar()
	s.applied = d.uvar()
	n := d.count()
	for i := 0; i < n && d.err == nil; i++ {
		l := lease{id: d.svar(), ttl: d.svar(), renew: d.uvar()}
		s.leases.ReplaceOrInsert(l)
	}
	n = d.count()
	for i := 0; i < n && d.err == nil; i++ {
		s.members.ReplaceOrInsert(MemberRecord{ID: d.uvar(), Name: d.str(), Address: d.str()})
	}
	if version >= 2 {
		n = d.count()
		var prev uint64
		for i := 0; i < n && d.err == nil; i++ {
			r := request{client: d.uvar(), seq: d.uvar(), index: d.uvar()}
			kept := d.flag()
			r.result = d.bytes()
			if kept != (r.result != nil) || r.client <= prev || r.index > s.applied {
				return nil, errDecode // out of order, duplicate or from the future: corrupt
			}
			prev = r.client
			s.requests.ReplaceOrInsert(r)
		}
	}
	if version >= 3 {
		s.noSpace = d.flag()
	}
	if version >= 4 {
		decodeIntegrity(d, s)
	}
	n = d.count()
	var last rec
	for i := 0; i < n && d.err == nil; i++ {
		kv := KV{Key: d.str(), ModRevision: d.svar()}
		tomb := false
		switch d.u8() {
		case 0:
			tomb = true
		case 1:
			kv.Value = d.bytes()
			kv.CreateRevision = d.svar()
			kv.Version = d.svar()
			kv.Lease = d.svar()
			if kv.Version <= 0 {
				d.fail() // Version 0 is a tombstone's
			}
		default:
			d.fail()
		}
		if d.err != nil {
			break
		}
		r := histKey(kv.Key, kv.ModRevision)
		var l live
		if !tomb {
			l = liveOf(&kv)
			r.b = l.b
		}
		if i > 0 && !recLess(last, r) {
			return nil, errDecode // out of order or duplicate: corrupt
		}
		if r.ModRevision > s.rev || r.ModRevision <= 0 {
			return nil, errDecode
		}
		if r.ModRevision >= s.compactRev {
			s.byRev.ReplaceOrInsert(revKey{r.ModRevision, r.Key})
		}
		if (i == 0 || last.Key != r.Key) && !tomb { // the key's newest: live
			s.cur.ReplaceOrInsert(l)
			if kv.Lease != 0 {
				s.attached.ReplaceOrInsert(attach{kv.Lease, kv.Key})
			}
		} else {
			s.hist.ReplaceOrInsert(r)
		}
		last = r
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, errDecode
	}
	s.bytes = s.recount()
	return s, nil
}

// Hash is a digest of the replicated state (revisions, live keys, history
// and leases), equal on every replica that applied the same log.
func (v *View) Hash() uint64 {
	h := fnv.New64a()
	e := &encoder{}
	e.svar(v.st.rev)
	e.svar(v.st.compactRev)
	e.flag(v.st.noSpace)
	v.st.eachVersion(func(key string, rev int64, kv *KV) bool {
		e.str(key)
		e.svar(rev)
		if kv != nil {
			e.bytes(kv.Value)
			e.svar(kv.Version)
			e.svar(kv.Lease)
		}
		if len(e.b) > 32<<10 {
			h.Write(e.b)
			e.b = e.b[:0]
		}
		return true
	})
	v.st.leases.Ascend(func(l lease) bool {
		e.svar(l.id)
		e.svar(l.ttl)
		return true
	})
	v.st.members.Ascend(func(m MemberRecord) bool {
		e.uvar(m.ID)
		e.str(m.Name)
		e.str(m.Address)
		return true
	})
	v.st.requests.Ascend(func(r request) bool {
		e.uvar(r.client)
		e.uvar(r.seq)
		e.uvar(r.index)
		e.bytes(r.result)
		if len(e.b) > 32<<10 {
			h.Write(e.b)
			e.b = e.b[:0]
		}
		return true
	})
	h.Write(e.b)
	return h.Sum64()
}
