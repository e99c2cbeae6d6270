package sm

import (
	"bytes"
	"math"
	"sort"
	"strings"

	"github.com/google/btree"
)

const btreeDegree = 32

// The current-key tree and the history hold items by value, not *KV: a
// version is its key and one buffer (header and value, see live), no heap
// object of its own, and the garbage collector, which marks the whole
// store on every cycle, follows three pointers per version (its key and
// buffer, and the revision index's key) instead of five.

// rec is one entry of the history: a past version of a key, whose buffer
// (see live: header, then value) moved here from the current-key tree as
// it was, or a tombstone (b nil; ModRevision is the delete's revision).
// History is ordered by key, newest revision first. An item is 48 bytes, a
// version kept whole would be 72, and moving a version into history
// copies and allocates nothing.
type rec struct {
	Key         string
	ModRevision int64
	b           []byte
}

// tomb reports whether r is a tombstone.
func (r *rec) tomb() bool { return r.b == nil }

// kv returns the version r holds (a tombstone's is zero but for Key and
// ModRevision). Its Value shares r's buffer, which is never written.
func (r *rec) kv() KV {
	if r.tomb() {
		return KV{Key: r.Key, ModRevision: r.ModRevision}
	}
	l := live{Key: r.Key, b: r.b}
	return l.kv()
}

// version returns the version r holds, nil for a tombstone.
func (r *rec) version() *KV {
	if r.tomb() {
		return nil
	}
	kv := r.kv()
	return &kv
}

// recOf is the history entry of live version l, sharing its buffer.
func recOf(l live) rec { return rec{Key: l.Key, ModRevision: l.modRevision(), b: l.b} }

// size is what r counts for in the store's bytes, as its version did.
func (r *rec) size() int64 {
	n := int64(len(r.Key) + versionOverhead)
	if !r.tomb() {
		n += int64(len(r.b) - liveHeader)
	}
	return n
}

func histKey(key string, rev int64) rec { return rec{Key: key, ModRevision: rev} }

func recLess(a, b rec) bool {
	// One three-way compare: != then < would walk a shared prefix twice.
	if c := strings.Compare(a.Key, b.Key); c != 0 {
		return c < 0
	}
	return a.ModRevision > b.ModRevision
}

// revKey indexes history by revision, for watchers and compaction.
type revKey struct {
	rev int64
	key string
}

func revKeyLess(a, b revKey) bool {
	if a.rev != b.rev {
		return a.rev < b.rev
	}
	return a.key < b.key
}

type lease struct {
	id    int64
	ttl   int64  // ms
	renew uint64 // Raft index of the grant or last keep-alive
}

func leaseLess(a, b lease) bool { return a.id < b.id }

type attach struct {
	lease int64
	key   string
}

func attachLess(a, b attach) bool {
	if a.lease != b.lease {
		return a.lease < b.lease
	}
	return a.key < b.key
}

// request is what a shard remembers of a client's latest request, so that
// a retry of it is answered, not applied again (Command.Client).
type request struct {
	client uint64
	seq    uint64
	index  uint64 // the Raft index it was applied at
	result []byte // its encoded result; nil when larger than maxKeptResult
}

func requestLess(a, b request) bool { return a.client < b.client }

const (
	// maxRequests bounds the request table. Past it, the requests applied
	// longest ago are forgotten, down to 3/4 of it. A member proposes
	// through 272 clients per shard (coord's maxInFlight for writes and
	// maxKeepAlivesInFlight for keep-alives), each retrying only its latest
	// request, so forgetting one still retried would take thousands of
	// other clients proposing in between; the table holds the clients of
	// 60 member starts. With maxKeptResult it bounds the table to 16 MiB of
	// results.
	maxRequests = 1 << 14
	// maxKeptResult bounds a remembered result: a retry of a request whose
	// result was larger gets CodeResultLost. A put's result is tens of
	// bytes; a put with PrevKV, or a Txn that reads, may be larger.
	maxKeptResult = 1 << 10
)

// state is the whole replicated state of one shard. The trees are
// copy-on-write: clone() is O(1) and the clone is immutable from then on.
type state struct {
	rev        int64 // current revision; starts at 1 like etcd
	compactRev int64
	applied    uint64 // Raft index of the last applied entry
	cur        *btree.BTreeG[live]
	// hist holds every version of a key but its live one: versions since
	// overwritten or deleted, and tombstones. A key's live version is in
	// cur only, so creating a key writes no history, and history holds only
	// what changed within the retained revisions.
	hist     *btree.BTreeG[rec]
	byRev    *btree.BTreeG[revKey]
	leases   *btree.BTreeG[lease]
	attached *btree.BTreeG[attach]
	members  *btree.BTreeG[MemberRecord]
	requests *btree.BTreeG[request]
	// bytes is what the store holds, as counted by size: live and past
	// versions, tombstones and leases. It is kept as the state changes,
	// the same on every replica (it depends on the state only), for the
	// quota (see noSpace).
	bytes int64
	// noSpace is the NOSPACE alarm: raised through Raft (CmdAlarm) by a
	// member that found the store at its quota; while it is raised,
	// commands that grow the store are refused (CodeNoSpace).
	noSpace bool
	// check is the latest integrity check (see integrity.go), nil before
	// the first; corrupt, when not empty, is the CORRUPT alarm: the
	// replicas a check found diverged.
	check   *check
	corrupt []uint64
}

// Bytes the quota counts per version, tombstone and lease beside keys and
// values: about what the trees and indexes spend on each.
const (
	versionOverhead = 64
	leaseOverhead   = 48
)

// size is what one version or tombstone counts for in the store's bytes.
func size(kv *KV) int64 { return int64(len(kv.Key) + len(kv.Value) + versionOverhead) }

func memberLess(a, b MemberRecord) bool { return a.ID < b.ID }

func newState() *state {
	return &state{
		rev:      1,
		cur:      btree.NewG(btreeDegree, liveLess),
		hist:     btree.NewG(btreeDegree, recLess),
		byRev:    btree.NewG(btreeDegree, revKeyLess),
		leases:   btree.NewG(btreeDegree, leaseLess),
		attached: btree.NewG(btreeDegree, attachLess),
		members:  btree.NewG(btreeDegree, memberLess),
		requests: btree.NewG(btreeDegree, requestLess),
	}
}

func (s *state) clone() *View {
	return &View{st: state{
		rev: s.rev, compactRev: s.compactRev, applied: s.applied,
		cur: s.cur.Clone(), hist: s.hist.Clone(), byRev: s.byRev.Clone(),
		leases: s.leases.Clone(), attached: s.attached.Clone(), members: s.members.Clone(),
		requests: s.requests.Clone(), bytes: s.bytes, noSpace: s.noSpace,
		check: s.check, corrupt: s.corrupt,
	}}
}

// View is an immutable point-in-time state of a shard, safe for concurrent
// use by any number of goroutines.
type View struct{ st state }

// Revision is the shard's revision in this view.
func (v *View) Revision() int64 { return v.st.rev }

// CompactRevision is the oldest revision still readable (0: nothing compacted).
func (v *View) CompactRevision() int64 { return v.st.compactRev }

// Applied is the Raft index this view reflects.
func (v *View) Applied() uint64 { return v.st.applied }

// Bytes returns what the store holds as the quota counts it: every live
// and past version (key, value and a fixed overhead), tombstone and lease.
// Every replica counts the same at the same applied index.
func (v *View) Bytes() int64 { return v.st.bytes }

// NoSpace reports whether the NOSPACE alarm is raised.
func (v *View) NoSpace() bool { return v.st.noSpace }

// txnCtx collects what one command changes, to hand to watchers afterwards.
type txnCtx struct {
	rev    int64 // the revision the writes get (s.rev+1)
	wrote  bool
	events []Event // the batch's events, this command's appended
}

// get returns key's live version.
func (s *state) get(key string) (KV, bool) {
	l, ok := s.cur.Get(liveKey(key))
	if !ok {
		return KV{}, false
	}
	return l.kv(), true
}

// put makes value key's new live version and returns the one it
// replaced, nil when the key did not exist. buf, when not nil, is a buffer
// of liveHeader bytes followed by value (the decoder's, see Op.Buf), which
// the store then owns; without it, put copies value into one.
func (s *state) put(t *txnCtx, key string, value, buf []byte, leaseID int64) *KV {
	if buf == nil {
		buf, value = newLiveBuf(value), nil
		if len(buf) > liveHeader {
			value = buf[liveHeader:len(buf):len(buf)]
		}
	}
	kv := KV{Key: key, Value: value, ModRevision: t.rev, Version: 1, Lease: leaseID, CreateRevision: t.rev}
	l := live{Key: key, b: buf}
	l.setHeader(&kv)
	// One search finds the live version and replaces it. An overwrite then
	// learns its CreateRevision and Version from the version it replaced,
	// and writes them into its own buffer: no view can see the buffer
	// before this batch ends.
	old, existed := s.cur.ReplaceOrInsert(l)
	s.bytes += size(&kv) // the replaced version stays, as history
	// The event's copies (the tree holds its own): the new version and,
	// for an overwrite, the one it replaced, in one allocation.
	var ev, prev *KV
	if existed {
		pair := &[2]KV{1: old.kv()}
		ev, prev = &pair[0], &pair[1]
		kv.CreateRevision = prev.CreateRevision
		kv.Version = prev.Version + 1
		l.setHeader(&kv)
		if prev.Lease != 0 && prev.Lease != leaseID {
			s.attached.Delete(attach{prev.Lease, key})
		}
		s.hist.ReplaceOrInsert(recOf(old))
	}
	if leaseID != 0 {
		s.attached.ReplaceOrInsert(attach{leaseID, key})
	}
	s.byRev.ReplaceOrInsert(revKey{t.rev, key})
	t.wrote = true
	if ev == nil {
		ev = new(KV)
	}
	*ev = kv
	t.events = append(t.events, Event{KV: ev, PrevKV: prev})
	return prev
}

// del deletes kv, key's live version. kv becomes the event's PrevKV: it must
// not change afterwards.
func (s *state) del(t *txnCtx, kv *KV) {
	if old, ok := s.cur.Delete(liveKey(kv.Key)); ok {
		s.hist.ReplaceOrInsert(recOf(old))
	}
	if kv.Lease != 0 {
		s.attached.Delete(attach{kv.Lease, kv.Key})
	}
	tomb := histKey(kv.Key, t.rev)
	s.hist.ReplaceOrInsert(tomb)
	s.bytes += tomb.size()
	s.byRev.ReplaceOrInsert(revKey{t.rev, kv.Key})
	t.wrote = true
	t.events = append(t.events, Event{Delete: true, KV: &KV{Key: kv.Key, ModRevision: t.rev}, PrevKV: kv})
}

// inRange reports whether key is in [key0, end); an empty end means key0 only.
func inRange(key, key0, end string) bool {
	if end == "" {
		return key == key0
	}
	return key >= key0 && (end == "\x00" || key < end)
}

// scanCur visits live keys in [key, end) in key order; end "\x00" means no
// upper bound (etcd's convention for "from key").
func (s *state) scanCur(key, end string, fn func(KV) bool) {
	if end == "" {
		if kv, ok := s.get(key); ok {
			fn(kv)
		}
		return
	}
	s.cur.AscendGreaterOrEqual(liveKey(key), func(l live) bool {
		if end != "\x00" && l.Key >= end {
			return false
		}
		return fn(l.kv())
	})
}

// at returns the version of key live at rev (rev >= compactRev), false when
// there was none: the live version when it is that old, else the newest
// past version at or before rev.
func (s *state) at(key string, rev int64) (KV, bool) {
	if kv, ok := s.get(key); ok && kv.ModRevision <= rev {
		return kv, true
	}
	var kv KV
	ok := false
	s.hist.AscendGreaterOrEqual(histKey(key, rev), func(r rec) bool {
		if r.Key == key && !r.tomb() {
			kv, ok = r.kv(), true
		}
		return false
	})
	return kv, ok
}

// nextKey returns the first key at or after from, below end ("\x00": no
// bound), that has a live or a past version.
func (s *state) nextKey(from, end string) (string, bool) {
	key, ok := "", false
	s.cur.AscendGreaterOrEqual(liveKey(from), func(l live) bool {
		key, ok = l.Key, true
		return false
	})
	s.hist.AscendGreaterOrEqual(histKey(from, math.MaxInt64), func(r rec) bool {
		if !ok || r.Key < key {
			key, ok = r.Key, true
		}
		return false
	})
	if !ok || (end != "\x00" && key >= end) {
		return "", false
	}
	return key, true
}

// scanAt visits, in key order, the version of every key in [key, end) that
// was live at revision rev (rev <= s.rev, rev >= compactRev).
func (s *state) scanAt(key, end string, rev int64, fn func(KV) bool) {
	if end == "" {
		if kv, ok := s.at(key, rev); ok {
			fn(kv)
		}
		return
	}
	for {
		k, ok := s.nextKey(key, end)
		if !ok {
			return
		}
		if kv, ok := s.at(k, rev); ok && !fn(kv) {
			return
		}
		key = k + "\x00"
	}
}

// pointers returns pointers to the elements of kvs (nil for none), which
// must not change afterwards.
func pointers(kvs []KV) []*KV {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]*KV, len(kvs))
	for i := range kvs {
		out[i] = &kvs[i]
	}
	return out
}

func (s *state) rangeOp(op *Op) (OpResult, Code) {
	o := op.Range
	res := OpResult{Kind: OpRange}
	rev := o.Revision
	if rev > s.rev {
		return res, CodeFutureRevision
	}
	if rev > 0 && rev < s.compactRev {
		return res, CodeCompacted
	}
	var kvs []KV
	collect := func(kv KV) bool {
		if (o.MinCreate > 0 && kv.CreateRevision < o.MinCreate) || (o.MaxCreate > 0 && kv.CreateRevision > o.MaxCreate) {
			return true
		}
		res.Count++
		if o.CountOnly {
			return true
		}
		if !o.Sorted && o.Limit > 0 && int64(len(kvs)) >= o.Limit {
			res.More = true
			return true
		}
		kvs = append(kvs, kv)
		return true
	}
	if rev <= 0 || rev == s.rev {
		s.scanCur(op.Key, op.End, collect)
	} else {
		s.scanAt(op.Key, op.End, rev, collect)
	}
	if o.Sorted {
		sortKVs(kvs, o.SortTarget, o.SortDesc)
		if o.Limit > 0 && int64(len(kvs)) > o.Limit {
			kvs = kvs[:o.Limit]
			res.More = true
		}
	}
	if o.KeysOnly {
		for i := range kvs {
			kvs[i].Value = nil
		}
	}
	res.KVs = pointers(kvs)
	return res, CodeOK
}

func sortKVs(kvs []KV, target uint8, desc bool) {
	sort.SliceStable(kvs, func(i, j int) bool { return ordered(&kvs[i], &kvs[j], target, desc) })
}

// SortMerged sorts the results of range reads of several shards as one
// range read sorts its own (RangeOpts.SortTarget and SortDesc).
func SortMerged(kvs []*KV, target uint8, desc bool) {
	sort.SliceStable(kvs, func(i, j int) bool { return ordered(kvs[i], kvs[j], target, desc) })
}

// ordered reports whether a sorts before b by target, ties broken by key.
func ordered(a, b *KV, target uint8, desc bool) bool {
	var c int
	switch target {
	case SortVersion:
		c = cmpInt(a.Version, b.Version)
	case SortCreate:
		c = cmpInt(a.CreateRevision, b.CreateRevision)
	case SortMod:
		c = cmpInt(a.ModRevision, b.ModRevision)
	case SortValue:
		c = bytes.Compare(a.Value, b.Value)
	}
	if c == 0 {
		c = cmpStr(a.Key, b.Key)
	}
	if desc {
		return c > 0
	}
	return c < 0
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *state) compare(c *Compare) bool {
	kv, ok := s.get(c.Key)
	var r int
	switch c.Target {
	case TargetValue:
		if !ok {
			return false // etcd: a value compare on a missing key is false
		}
		r = bytes.Compare(kv.Value, c.Value)
	case TargetVersion, TargetCreate, TargetMod, TargetLease:
		var v int64
		if ok {
			switch c.Target {
			case TargetVersion:
				v = kv.Version
			case TargetCreate:
				v = kv.CreateRevision
			case TargetMod:
				v = kv.ModRevision
			case TargetLease:
				v = kv.Lease
			}
		}
		r = cmpInt(v, c.Int)
	}
	switch c.Result {
	case CmpEqual:
		return r == 0
	case CmpNotEqual:
		return r != 0
	case CmpLess:
		return r < 0
	case CmpGreater:
		return r > 0
	}
	return false
}

func (s *state) hasLease(id int64) bool {
	_, ok := s.leases.Get(lease{id: id})
	return ok
}

// checkOps validates what must hold before any op of a Txn branch runs, so a
// branch either applies whole or not at all.
func (s *state) checkOps(ops []Op) Code {
	for i := range ops {
		op := &ops[i]
		switch op.Kind {
		case OpPut:
			if op.Lease < 0 {
				return CodeBadCommand
			}
			if op.Lease != 0 && op.LeaseTTL <= 0 && !s.hasLease(op.Lease) {
				return CodeLeaseNotFound
			}
		case OpRange:
			if op.Range.Revision > s.rev {
				return CodeFutureRevision
			}
			if op.Range.Revision > 0 && op.Range.Revision < s.compactRev {
				return CodeCompacted
			}
		}
	}
	return CodeOK
}

func (s *state) applyTxn(t *applyCtx, txn *Txn, index uint64) *Result {
	ok := true
	for i := range txn.Compares {
		if !s.compare(&txn.Compares[i]) {
			ok = false
			break
		}
	}
	ops := txn.Then
	if !ok {
		ops = txn.Else
	}
	if c := s.checkOps(ops); c != CodeOK {
		return &Result{Code: c, Revision: s.rev}
	}
	res := &Result{Succeeded: ok}
	res.Ops = res.opsFor(len(ops))
	for i := range ops {
		op := &ops[i]
		switch op.Kind {
		case OpPut:
			if op.Lease != 0 && !s.hasLease(op.Lease) {
				// The lease lives in another shard: materialise it here with
				// the TTL the proposer read from its home shard.
				s.leases.ReplaceOrInsert(lease{id: op.Lease, ttl: op.LeaseTTL, renew: index})
				s.bytes += leaseOverhead
				t.leaseRenewed = append(t.leaseRenewed, lease{id: op.Lease, ttl: op.LeaseTTL, renew: index})
			}
			prev := s.put(&t.txnCtx, op.Key, op.Value, op.Buf, op.Lease)
			r := OpResult{Kind: OpPut}
			if op.PrevKV && prev != nil {
				r.PrevKVs = []*KV{prev}
			}
			res.Ops[i] = r
		case OpDelete:
			r := OpResult{Kind: OpDelete}
			var victims []KV
			s.scanCur(op.Key, op.End, func(kv KV) bool {
				victims = append(victims, kv)
				return true
			})
			for i := range victims {
				s.del(&t.txnCtx, &victims[i])
			}
			r.Deleted = int64(len(victims))
			if op.PrevKV {
				r.PrevKVs = pointers(victims)
			}
			res.Ops[i] = r
		case OpRange:
			r, _ := s.rangeOp(op)
			res.Ops[i] = r
		}
	}
	return res
}

// revokeLease deletes a lease and every key attached to it in this shard.
func (s *state) revokeLease(t *applyCtx, id int64) {
	if _, ok := s.leases.Delete(lease{id: id}); ok {
		s.bytes -= leaseOverhead
	}
	var keys []string
	s.attached.AscendGreaterOrEqual(attach{lease: id}, func(a attach) bool {
		if a.lease != id {
			return false
		}
		keys = append(keys, a.key)
		return true
	})
	for _, k := range keys {
		if kv, ok := s.get(k); ok {
			s.del(&t.txnCtx, &kv)
		}
	}
	t.leaseGone = append(t.leaseGone, id)
}

// recount is bytes counted from scratch: what the incremental count must
// equal.
func (s *state) recount() int64 {
	var n int64
	s.cur.Ascend(func(l live) bool { kv := l.kv(); n += size(&kv); return true })
	s.hist.Ascend(func(r rec) bool { n += r.size(); return true })
	return n + int64(s.leases.Len())*leaseOverhead
}

// compact drops history older than rev, keeping for each key the newest
// version at or before rev when it is live (reads at rev need it). byRev keeps
// only revisions >= rev: watchers never read below the compaction point.
// byRev names every key written since the last compaction, the only keys
// with versions to drop. A key named more than once is looked at again: the
// second look finds nothing left to drop, which costs less than remembering
// every key looked at (most keys are named once).
func (s *state) compact(rev int64) {
	var old []rec
	for {
		k, ok := s.byRev.Min()
		if !ok || k.rev >= rev {
			break
		}
		s.byRev.DeleteMin() // the oldest first: no search
		// The key's past versions at or before rev, newest first.
		old = old[:0]
		s.hist.AscendGreaterOrEqual(histKey(k.key, rev), func(r rec) bool {
			if r.Key != k.key {
				return false
			}
			old = append(old, r)
			return true
		})
		if len(old) == 0 {
			continue // no past version at or before rev: nothing to drop
		}
		// The newest version at or before rev stays when it is live (reads
		// at rev need it), or a delete at exactly rev (watchers from rev read
		// it). When that is the live version, every past one goes.
		if kv, ok := s.get(k.key); !ok || kv.ModRevision > rev {
			if r := &old[0]; !r.tomb() || r.ModRevision == rev {
				old = old[1:]
			}
		}
		for _, r := range old {
			s.hist.Delete(r)
			s.bytes -= r.size()
		}
	}
	s.compactRev = rev
}

// remember records r as its client's latest request, forgetting the oldest
// requests when the table is full. Deterministic: ties in index (one entry
// cannot hold two requests) do not occur.
func (s *state) remember(r request) {
	if len(r.result) > maxKeptResult {
		r.result = nil
	}
	s.requests.ReplaceOrInsert(r)
	if s.requests.Len() <= maxRequests {
		return
	}
	all := make([]request, 0, s.requests.Len())
	s.requests.Ascend(func(q request) bool { all = append(all, q); return true })
	sort.Slice(all, func(i, j int) bool { return all[i].index < all[j].index })
	for _, q := range all[:len(all)-maxRequests*3/4] {
		s.requests.Delete(q)
	}
}

// cursor walks a B-tree in order, a chunk of items at a time, so that two
// trees can be merged: btree's iteration is by callback only. The tree must
// not change while a cursor walks it (views' trees never do): each chunk
// starts again from the last item of the one before.
type cursor[T any] struct {
	t       *btree.BTreeG[T]
	buf     []T
	i       int
	started bool // buf holds items after the first fill
	end     bool // the tree has no items after buf
}

const cursorChunk = 256

func newCursor[T any](t *btree.BTreeG[T]) *cursor[T] {
	return &cursor[T]{t: t, buf: make([]T, 0, cursorChunk)}
}

// peek returns the item under the cursor, nil past the last. It points
// into the cursor's buffer: valid until next.
func (c *cursor[T]) peek() *T {
	if c.i == len(c.buf) && !c.end {
		c.fill()
	}
	if c.i == len(c.buf) {
		return nil
	}
	return &c.buf[c.i]
}

func (c *cursor[T]) next() { c.i++ }

func (c *cursor[T]) fill() {
	var last T
	skip := c.started && len(c.buf) > 0 // the previous chunk's last item comes first again
	if skip {
		last = c.buf[len(c.buf)-1]
	}
	c.buf, c.i = c.buf[:0], 0
	visit := func(it T) bool {
		if skip {
			skip = false
			return true
		}
		c.buf = append(c.buf, it)
		return len(c.buf) < cursorChunk
	}
	if c.started {
		c.t.AscendGreaterOrEqual(last, visit)
	} else {
		c.t.Ascend(visit)
	}
	c.started = true
	c.end = len(c.buf) < cursorChunk
}

// eachVersion visits every version of every key, live or past, in key
// order and newest first: the order snapshots and the state hash use. kv is
// nil for a tombstone; fn must not keep it: it is valid during the call only.
func (s *state) eachVersion(fn func(key string, rev int64, kv *KV) bool) {
	lc, hc := newCursor(s.cur), newCursor(s.hist)
	var kv KV // each version decoded here in turn: fn must not keep it
	for {
		l, r := lc.peek(), hc.peek()
		switch {
		case l == nil && r == nil:
			return
		case l != nil && (r == nil || l.Key <= r.Key): // a key's live version is its newest
			kv = l.kv()
			if !fn(l.Key, kv.ModRevision, &kv) {
				return
			}
			lc.next()
		case r.tomb():
			if !fn(r.Key, r.ModRevision, nil) {
				return
			}
			hc.next()
		default:
			kv = r.kv()
			if !fn(r.Key, r.ModRevision, &kv) {
				return
			}
			hc.next()
		}
	}
}
