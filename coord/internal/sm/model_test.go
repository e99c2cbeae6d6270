package sm_test

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"

	dbsm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// model is a deliberately naive reference implementation of the state
// machine's semantics: maps copied at every revision.
type model struct {
	rev, compact int64
	cur          map[string]sm.KV
	at           map[int64]map[string]sm.KV // state at each revision
	events       map[int64][]sm.Event       // per revision, in key order
	leases       map[int64]sm.LeaseInfo
	members      map[uint64]sm.MemberRecord
	noSpace      bool
	// The integrity check: the current check's index (0: none), its
	// reports by replica, whether the CORRUPT alarm was cleared since it
	// started, and whether the alarm is raised.
	check    uint64
	reports  map[uint64]uint64
	disarmed bool
	corrupt  bool
}

func newModel() *model {
	return &model{
		rev:     1,
		cur:     map[string]sm.KV{},
		at:      map[int64]map[string]sm.KV{1: {}},
		events:  map[int64][]sm.Event{},
		leases:  map[int64]sm.LeaseInfo{},
		members: map[uint64]sm.MemberRecord{},
	}
}

func inRange(k, key, end string) bool {
	if end == "" {
		return k == key
	}
	return k >= key && (end == "\x00" || k < end)
}

func sortedKeys(m map[string]sm.KV) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func kvPtr(kv sm.KV) *sm.KV { return &kv }

func (m *model) rangeOp(state map[string]sm.KV, op *sm.Op) sm.OpResult {
	o := op.Range
	res := sm.OpResult{Kind: sm.OpRange}
	var kvs []*sm.KV
	for _, k := range sortedKeys(state) {
		if inRange(k, op.Key, op.End) {
			kvs = append(kvs, kvPtr(state[k]))
		}
	}
	res.Count = int64(len(kvs))
	if o.CountOnly {
		return res
	}
	if o.Sorted {
		val := func(kv *sm.KV) int64 {
			switch o.SortTarget {
			case sm.SortVersion:
				return kv.Version
			case sm.SortCreate:
				return kv.CreateRevision
			case sm.SortMod:
				return kv.ModRevision
			}
			return 0
		}
		sort.SliceStable(kvs, func(i, j int) bool {
			a, b := kvs[i], kvs[j]
			c := 0
			if o.SortTarget == sm.SortValue {
				c = bytes.Compare(a.Value, b.Value)
			} else if va, vb := val(a), val(b); va != vb {
				c = -1
				if va > vb {
					c = 1
				}
			}
			if c == 0 {
				c = strings.Compare(a.Key, b.Key)
			}
			if o.SortDesc {
				return c > 0
			}
			return c < 0
		})
	}
	if o.Limit > 0 && int64(len(kvs)) > o.Limit {
		kvs = kvs[:o.Limit]
		res.More = true
	}
	if o.KeysOnly {
		for i, kv := range kvs {
			c := *kv
			c.Value = nil
			kvs[i] = &c
		}
	}
	res.KVs = kvs
	return res
}

func (m *model) compare(c sm.Compare) bool {
	kv, ok := m.cur[c.Key]
	r := 0
	if c.Target == sm.TargetValue {
		if !ok {
			return false
		}
		r = bytes.Compare(kv.Value, c.Value)
	} else {
		v := map[uint8]int64{sm.TargetVersion: kv.Version, sm.TargetCreate: kv.CreateRevision, sm.TargetMod: kv.ModRevision, sm.TargetLease: kv.Lease}[c.Target]
		switch {
		case v < c.Int:
			r = -1
		case v > c.Int:
			r = 1
		}
	}
	switch c.Result {
	case sm.CmpEqual:
		return r == 0
	case sm.CmpNotEqual:
		return r != 0
	case sm.CmpLess:
		return r < 0
	}
	return r > 0
}

// write commits one revision's events, if any.
func (m *model) write(evs []sm.Event) {
	if len(evs) == 0 {
		return
	}
	m.rev++
	slices.SortStableFunc(evs, func(a, b sm.Event) int { return strings.Compare(a.KV.Key, b.KV.Key) })
	m.events[m.rev] = evs
	snap := make(map[string]sm.KV, len(m.cur))
	for k, v := range m.cur {
		snap[k] = v
	}
	m.at[m.rev] = snap
}

func (m *model) del(newRev int64, k string) sm.Event {
	prev := m.cur[k]
	delete(m.cur, k)
	return sm.Event{Delete: true, KV: &sm.KV{Key: k, ModRevision: newRev}, PrevKV: kvPtr(prev)}
}

func (m *model) revoke(id int64) []sm.Event {
	delete(m.leases, id)
	var evs []sm.Event
	for _, k := range sortedKeys(m.cur) {
		if m.cur[k].Lease == id {
			evs = append(evs, m.del(m.rev+1, k))
		}
	}
	return evs
}

func (m *model) apply(index uint64, c *sm.Command) (*sm.Result, []sm.Event) {
	res := &sm.Result{}
	var evs []sm.Event
	if m.corrupt && m.changes(c) {
		return &sm.Result{Code: sm.CodeCorrupt, Revision: m.rev}, nil
	}
	switch c.Kind {
	case sm.CmdTxn:
		for _, ops := range [][]sm.Op{c.Txn.Then, c.Txn.Else} {
			seen := map[string]bool{}
			for _, op := range ops {
				if op.Kind == sm.OpPut {
					if seen[op.Key] {
						return &sm.Result{Code: sm.CodeDuplicateKey, Revision: m.rev}, nil
					}
					seen[op.Key] = true
				}
			}
		}
		if m.noSpace && sm.HasPut(&c.Txn) {
			return &sm.Result{Code: sm.CodeNoSpace, Revision: m.rev}, nil
		}
		ok := true
		for _, cp := range c.Txn.Compares {
			ok = ok && m.compare(cp)
		}
		ops := c.Txn.Then
		if !ok {
			ops = c.Txn.Else
		}
		for _, op := range ops {
			_, have := m.leases[op.Lease]
			switch {
			case op.Kind == sm.OpPut && op.Lease < 0:
				return &sm.Result{Code: sm.CodeBadCommand, Revision: m.rev}, nil
			case op.Kind == sm.OpPut && op.Lease != 0 && op.LeaseTTL <= 0 && !have:
				return &sm.Result{Code: sm.CodeLeaseNotFound, Revision: m.rev}, nil
			case op.Kind == sm.OpRange && op.Range.Revision > m.rev:
				return &sm.Result{Code: sm.CodeFutureRevision, Revision: m.rev}, nil
			case op.Kind == sm.OpRange && op.Range.Revision > 0 && op.Range.Revision < m.compact:
				return &sm.Result{Code: sm.CodeCompacted, Revision: m.rev}, nil
			}
		}
		newRev := m.rev + 1
		res.Succeeded = ok
		for _, op := range ops {
			r := sm.OpResult{Kind: op.Kind}
			switch op.Kind {
			case sm.OpPut:
				if _, have := m.leases[op.Lease]; op.Lease != 0 && !have {
					m.leases[op.Lease] = sm.LeaseInfo{ID: op.Lease, TTL: op.LeaseTTL, Renew: index}
				}
				kv := sm.KV{Key: op.Key, Value: op.Value, CreateRevision: newRev, ModRevision: newRev, Version: 1, Lease: op.Lease}
				ev := sm.Event{KV: &kv}
				if prev, ok := m.cur[op.Key]; ok {
					kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
					ev.PrevKV = kvPtr(prev)
					if op.PrevKV {
						r.PrevKVs = []*sm.KV{kvPtr(prev)}
					}
				}
				m.cur[op.Key] = kv
				evs = append(evs, ev)
			case sm.OpDelete:
				for _, k := range sortedKeys(m.cur) {
					if inRange(k, op.Key, op.End) {
						ev := m.del(newRev, k)
						evs = append(evs, ev)
						r.Deleted++
						if op.PrevKV {
							r.PrevKVs = append(r.PrevKVs, ev.PrevKV)
						}
					}
				}
			case sm.OpRange:
				state := m.cur
				if rv := op.Range.Revision; rv > 0 && rv != m.rev {
					state = m.at[rv]
				}
				r = m.rangeOp(state, &op)
			}
			res.Ops = append(res.Ops, r)
		}
	case sm.CmdCompact:
		switch {
		case c.Revision > m.rev:
			res.Code = sm.CodeFutureRevision
		case c.Revision <= m.compact:
			res.Code = sm.CodeCompacted
		default:
			for r := m.compact; r < c.Revision; r++ {
				delete(m.at, r)
			}
			m.compact = c.Revision
		}
	case sm.CmdGrant:
		_, have := m.leases[c.LeaseID]
		switch {
		case c.LeaseID <= 0 || c.TTL <= 0:
			res.Code = sm.CodeBadCommand
		case have:
			res.Code = sm.CodeLeaseExists
		case m.noSpace:
			res.Code = sm.CodeNoSpace
		default:
			m.leases[c.LeaseID] = sm.LeaseInfo{ID: c.LeaseID, TTL: c.TTL, Renew: index}
			res.TTL = c.TTL
		}
	case sm.CmdKeepAlive:
		l, have := m.leases[c.LeaseID]
		if !have {
			res.Code = sm.CodeLeaseNotFound
			break
		}
		l.Renew = index
		m.leases[c.LeaseID] = l
		res.TTL = l.TTL
	case sm.CmdRevoke:
		if _, have := m.leases[c.LeaseID]; !have {
			res.Code = sm.CodeLeaseNotFound
			break
		}
		evs = m.revoke(c.LeaseID)
	case sm.CmdExpire:
		for _, it := range c.Expire {
			if l, have := m.leases[it.ID]; have && l.Renew == it.Renew {
				evs = append(evs, m.revoke(it.ID)...)
			}
		}
	case sm.CmdMember:
		if c.Member.ID == 0 || c.Member.Name == "" {
			res.Code = sm.CodeBadCommand
			break
		}
		m.members[c.Member.ID] = c.Member
	case sm.CmdAlarm:
		switch {
		case c.Alarm == sm.AlarmNoSpace:
			m.noSpace = c.Activate
		case c.Alarm == sm.AlarmCorrupt && !c.Activate:
			m.corrupt, m.disarmed = false, true
		default:
			res.Code = sm.CodeBadCommand
		}
	case sm.CmdHashCheck:
		m.check, m.reports, m.disarmed = index, map[uint64]uint64{}, false
	case sm.CmdHashReport:
		if _, dup := m.reports[c.Replica]; c.Check != m.check || m.check == 0 || m.disarmed || c.Replica == 0 || dup {
			break
		}
		m.reports[c.Replica] = c.Hash
		for _, h := range m.reports {
			if h != c.Hash {
				m.corrupt = true
			}
		}
	}
	m.write(evs)
	res.Revision = m.rev
	return res, m.events[m.rev][:len(evs):len(evs)]
}

// changes reports whether c would change the store: what the CORRUPT
// alarm refuses.
func (m *model) changes(c *sm.Command) bool {
	switch c.Kind {
	case sm.CmdTxn:
		for _, op := range append(slices.Clip(c.Txn.Then), c.Txn.Else...) {
			if op.Kind != sm.OpRange {
				return true
			}
		}
	case sm.CmdCompact, sm.CmdGrant, sm.CmdRevoke, sm.CmdExpire:
		return true
	}
	return false
}

func (m *model) leaseList() []sm.LeaseInfo {
	var out []sm.LeaseInfo
	for _, l := range m.leases {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b sm.LeaseInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// gen produces random commands, steered by the model so that most of them
// are meaningful.
type gen struct {
	rng  *rand.Rand
	m    *model
	keys []string
}

func newGen(seed int64, m *model) *gen {
	return &gen{rng: rand.New(rand.NewSource(seed)), m: m,
		keys: []string{"a", "a/1", "a/2", "a/b/1", "a/b/2", "b", "b/x", "c", "d/e/f", "z", "\x00", "a\xff"}}
}

func (g *gen) key() string { return g.keys[g.rng.Intn(len(g.keys))] }

func (g *gen) span() (string, string) {
	switch g.rng.Intn(5) {
	case 0, 1:
		return g.key(), ""
	case 2:
		return "a/", "a0" // a prefix
	case 3:
		return g.key(), "\x00"
	}
	k1, k2 := g.key(), g.key()
	if k1 > k2 {
		k1, k2 = k2, k1
	}
	return k1, k2
}

func (g *gen) rev() int64 {
	if g.rng.Intn(3) == 0 {
		return 0
	}
	lo := max(g.m.compact-2, -1)
	return lo + g.rng.Int63n(g.m.rev+3-lo)
}

func (g *gen) leaseID() int64 {
	if len(g.m.leases) > 0 && g.rng.Intn(4) != 0 {
		ls := g.m.leaseList()
		return ls[g.rng.Intn(len(ls))].ID
	}
	return g.rng.Int63n(12) - 1
}

func (g *gen) op() sm.Op {
	switch n := g.rng.Intn(10); {
	case n < 6:
		op := sm.Op{Kind: sm.OpPut, Key: g.key(), Value: []byte(fmt.Sprint(g.rng.Intn(20))), PrevKV: g.rng.Intn(2) == 0}
		if g.rng.Intn(5) == 0 {
			op.Value = nil
		}
		switch g.rng.Intn(10) {
		case 0, 1, 2:
			op.Lease = g.leaseID()
		case 3:
			op.Lease, op.LeaseTTL = g.rng.Int63n(15)+1, g.rng.Int63n(5000)+1
		}
		return op
	case n < 8:
		k, e := g.span()
		return sm.Op{Kind: sm.OpDelete, Key: k, End: e, PrevKV: g.rng.Intn(2) == 0}
	default:
		k, e := g.span()
		return sm.Op{Kind: sm.OpRange, Key: k, End: e, Range: sm.RangeOpts{
			Limit: g.rng.Int63n(5) - 1, Revision: g.rev(), KeysOnly: g.rng.Intn(4) == 0, CountOnly: g.rng.Intn(6) == 0,
			SortTarget: uint8(g.rng.Intn(5)), SortDesc: g.rng.Intn(2) == 0, Sorted: g.rng.Intn(2) == 0}}
	}
}

// branch makes a list of ops. Puts to a key a delete of the same branch
// covers are dropped: a Txn that puts and deletes one key reports different
// events from Apply and from the history (reported separately), which this
// differential test does not try to pin down.
func (g *gen) branch(n int) []sm.Op {
	var ops []sm.Op
	for i := 0; i < n; i++ {
		ops = append(ops, g.op())
	}
	seen := map[string]bool{}
	var out []sm.Op
	for _, op := range ops {
		if op.Kind == sm.OpPut {
			covered := slices.ContainsFunc(ops, func(d sm.Op) bool { return d.Kind == sm.OpDelete && inRange(op.Key, d.Key, d.End) })
			if covered || (seen[op.Key] && g.rng.Intn(10) != 0) {
				continue
			}
			seen[op.Key] = true
		}
		out = append(out, op)
	}
	return out
}

func (g *gen) command() *sm.Command {
	if g.m.noSpace && g.rng.Intn(20) == 0 { // an alarm lasts about 20 commands
		return &sm.Command{Kind: sm.CmdAlarm, Alarm: sm.AlarmNoSpace}
	}
	if g.m.corrupt && g.rng.Intn(20) == 0 {
		return &sm.Command{Kind: sm.CmdAlarm, Alarm: sm.AlarmCorrupt}
	}
	switch n := g.rng.Intn(200); {
	case n == 0:
		return &sm.Command{Kind: sm.CmdHashCheck}
	case n < 4 && g.m.check != 0:
		// A report of replica 1-3, for the current check or an older one,
		// mostly agreeing.
		c := &sm.Command{Kind: sm.CmdHashReport, Check: g.m.check, Replica: uint64(g.rng.Intn(4)), Hash: 7}
		if g.rng.Intn(8) == 0 {
			c.Check--
		}
		if g.rng.Intn(6) == 0 {
			c.Hash = 8
		}
		return c
	}
	switch n := g.rng.Intn(100); {
	case n < 58:
		c := &sm.Command{Kind: sm.CmdTxn}
		for i := g.rng.Intn(3); i > 0; i-- {
			cp := sm.Compare{Target: uint8(g.rng.Intn(5)), Result: uint8(g.rng.Intn(4)), Key: g.key()}
			if kv, ok := g.m.cur[cp.Key]; ok && g.rng.Intn(2) == 0 {
				cp.Value, cp.Int = kv.Value, kv.Version+g.rng.Int63n(3)-1
			} else {
				cp.Value, cp.Int = []byte(fmt.Sprint(g.rng.Intn(20))), g.rng.Int63n(g.m.rev+2)
			}
			c.Txn.Compares = append(c.Txn.Compares, cp)
		}
		c.Txn.Then = g.branch(g.rng.Intn(5))
		c.Txn.Else = g.branch(g.rng.Intn(3))
		return c
	case n < 66:
		return &sm.Command{Kind: sm.CmdGrant, LeaseID: g.rng.Int63n(16) - 1, TTL: g.rng.Int63n(5000) - 10}
	case n < 74:
		return &sm.Command{Kind: sm.CmdKeepAlive, LeaseID: g.leaseID()}
	case n < 79:
		return &sm.Command{Kind: sm.CmdRevoke, LeaseID: g.leaseID()}
	case n < 80 && g.rng.Intn(2) == 0:
		// The alarm, raised one time in three, so that writes mostly go in.
		return &sm.Command{Kind: sm.CmdAlarm, Alarm: uint8(g.rng.Intn(3)), Activate: g.rng.Intn(3) == 0}
	case n < 80:
		return &sm.Command{Kind: sm.CmdMember, Member: sm.MemberRecord{
			ID: uint64(g.rng.Intn(5)), Name: []string{"", "n1", "n2"}[g.rng.Intn(3)], Address: fmt.Sprint(g.rng.Intn(3))}}
	case n < 88:
		c := &sm.Command{Kind: sm.CmdExpire}
		for i := g.rng.Intn(3) + 1; i > 0; i-- {
			id := g.leaseID()
			renew := g.m.leases[id].Renew
			if g.rng.Intn(3) == 0 {
				renew = uint64(g.rng.Int63n(int64(renew) + 2))
			}
			c.Expire = append(c.Expire, sm.ExpireItem{ID: id, Renew: renew})
		}
		return c
	default:
		// Compact, usually to a valid revision that lags the head so that a
		// window of history stays readable.
		if g.rng.Intn(4) == 0 {
			bad := []int64{g.m.compact - 1, g.m.compact, g.m.rev + 1, g.m.rev + 5}
			return &sm.Command{Kind: sm.CmdCompact, Revision: bad[g.rng.Intn(len(bad))]}
		}
		lag := int64(40)
		if g.rng.Intn(20) == 0 {
			lag = 0
		}
		r := g.m.compact + 1 + g.rng.Int63n(max(g.m.rev-g.m.compact-lag, 1))
		if r > g.m.rev {
			r = g.m.rev + 1 // refused as a future revision
		}
		return &sm.Command{Kind: sm.CmdCompact, Revision: r}
	}
}

func checkAgainstModel(t *testing.T, step int, v *sm.View, m *model, g *gen) {
	t.Helper()
	if v.Revision() != m.rev || v.CompactRevision() != m.compact {
		t.Fatalf("step %d: rev %d compact %d, model %d %d", step, v.Revision(), v.CompactRevision(), m.rev, m.compact)
	}
	all := m.rangeOp(m.cur, rangeOp("", "\x00", sm.RangeOpts{}))
	if got := rangeAll(t, v, 0); !kvsEqual(got, all.KVs) {
		t.Fatalf("step %d: store %s\nmodel %s", step, fmtKVs(got), fmtKVs(all.KVs))
	}
	if got, want := v.Leases(), m.leaseList(); !slices.Equal(got, want) && len(got)+len(want) > 0 {
		t.Fatalf("step %d: leases %v, model %v", step, got, want)
	}
	if got := len(v.Corrupt()) > 0; got != m.corrupt {
		t.Fatalf("step %d: CORRUPT alarm %v, model %v", step, got, m.corrupt)
	}
	var members []sm.MemberRecord
	for _, mr := range m.members {
		members = append(members, mr)
	}
	slices.SortFunc(members, func(a, b sm.MemberRecord) int { return cmp.Compare(a.ID, b.ID) })
	if got := v.Members(); !slices.Equal(got, members) {
		t.Fatalf("step %d: members %v, model %v", step, got, members)
	}
	for _, l := range m.leases {
		var want []string
		for _, k := range sortedKeys(m.cur) {
			if m.cur[k].Lease == l.ID {
				want = append(want, k)
			}
		}
		if got := v.LeaseKeys(l.ID); !slices.Equal(got, want) {
			t.Fatalf("step %d: lease %d keys %v, model %v", step, l.ID, got, want)
		}
	}
	// A few random ranges, at random readable revisions.
	for i := 0; i < 3; i++ {
		op := g.op()
		op.Kind = sm.OpRange
		if op.Range.Revision > 0 {
			op.Range.Revision = max(m.compact, 1) + g.rng.Int63n(m.rev-max(m.compact, 1)+1)
		}
		got, code := v.Range(&op)
		state := m.cur
		if op.Range.Revision > 0 {
			state = m.at[op.Range.Revision]
		}
		want := m.rangeOp(state, &op)
		if code != sm.CodeOK || !deepEqual(normResult(&sm.Result{Ops: []sm.OpResult{got}}), normResult(&sm.Result{Ops: []sm.OpResult{want}})) {
			t.Fatalf("step %d: range %+v: code %d\n%s count %d more %v\nmodel %s count %d more %v", step, op, code,
				fmtKVs(got.KVs), got.Count, got.More, fmtKVs(want.KVs), want.Count, want.More)
		}
	}
	// Old revisions answer CodeCompacted, future ones CodeFutureRevision.
	if m.compact > 1 {
		if _, code := v.Range(rangeOp("a", "\x00", sm.RangeOpts{Revision: m.compact - 1})); code != sm.CodeCompacted {
			t.Fatalf("step %d: range below compaction: code %d", step, code)
		}
	}
	if _, code := v.Range(rangeOp("a", "", sm.RangeOpts{Revision: m.rev + 1})); code != sm.CodeFutureRevision {
		t.Fatalf("step %d: future range: code %d", step, code)
	}
	// History pages from a random revision after the compaction point.
	// (When everything up to the revision is compacted, from is rev+1 and
	// the history is empty.)
	lo := max(m.compact+1, 1)
	from := lo + g.rng.Int63n(max(m.rev-lo+1, 1))
	key, end := g.span()
	maxN := 1 + g.rng.Intn(6)
	var got []sm.Event
	for f := from; f <= m.rev; {
		page, last := v.Events(f, m.rev, key, end, maxN)
		// An uncut page covers everything up to to; a cut one ends with the
		// whole revision in which it reached max.
		cut := len(page) >= maxN && page[len(page)-1].KV.ModRevision == last
		if last < f || last > m.rev || (last != m.rev && !cut) {
			t.Fatalf("step %d: Events(%d..) last %d with %d events", step, f, last, len(page))
		}
		got = append(got, page...)
		f = last + 1
	}
	var want []sm.Event
	for r := from; r <= m.rev; r++ {
		for _, e := range m.events[r] {
			if inRange(e.KV.Key, key, end) {
				want = append(want, e)
			}
		}
	}
	if !eventsEqual(got, want) {
		t.Fatalf("step %d: Events(%d, %d, %q, %q):\n%s\nmodel:\n%s", step, from, m.rev, key, end, fmtEvents(got), fmtEvents(want))
	}
	// List of a random directory.
	dir := []string{"", "a/", "a/b/", "d/", "d/e/", "b/"}[g.rng.Intn(6)]
	var wantList []string
	for _, k := range sortedKeys(m.cur) {
		if !strings.HasPrefix(k, dir) {
			continue
		}
		name := k
		if i := strings.IndexByte(k[len(dir):], '/'); i >= 0 {
			name = k[:len(dir)+i+1]
		}
		if len(wantList) == 0 || wantList[len(wantList)-1] != name {
			wantList = append(wantList, name)
		}
	}
	var gotList []string
	for _, e := range v.List(dir) {
		if e.Dir != strings.HasSuffix(e.Name, "/") || (e.KV == nil) != e.Dir || (e.KV != nil && !kvEqual(e.KV, kvPtr(m.cur[e.Name]))) {
			t.Fatalf("step %d: list entry %+v", step, e)
		}
		gotList = append(gotList, e.Name)
	}
	if !slices.Equal(gotList, wantList) {
		t.Fatalf("step %d: List(%q) = %q, model %q", step, dir, gotList, wantList)
	}
}

// TestRandomAgainstModel applies a few thousand random commands of every
// kind to a machine and checks each result, each event and, regularly, the
// whole readable state against the model. A second machine gets the same log
// through Update in random batches, a third is recovered from snapshots taken
// along the way; all must hash alike throughout.
func TestRandomAgainstModel(t *testing.T) {
	for _, seed := range []int64{1, 2, 3, 4, 5} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { randomRun(t, seed, 4000) })
	}
}

func randomRun(t *testing.T, seed int64, steps int) {
	m := newModel()
	g := newGen(seed, m)
	m1, m2 := sm.New(nil), sm.New(nil)
	var m3 *sm.Machine
	var batch []dbsm.Entry
	flush := func() {
		if _, err := m2.Update(batch); err != nil {
			t.Fatal(err)
		}
		batch = nil
	}
	idx := uint64(0)
	codes := map[sm.Code]int{}
	kinds := map[uint8]int{}
	reqSeq := map[uint64]uint64{}
	for step := 0; step < steps; step++ {
		idx += 1 + uint64(g.rng.Intn(3))
		c := g.command()
		if g.rng.Intn(3) == 0 {
			// A new request of one of a few clients: applied like any
			// command, and remembered in the replicated request table.
			c.Client = uint64(1 + g.rng.Intn(4))
			reqSeq[c.Client]++
			c.Seq = reqSeq[c.Client]
		}
		raw := sm.EncodeCommand(c)
		if g.rng.Intn(100) == 0 {
			raw = raw[:g.rng.Intn(2)] // undecodable
		}
		hashBefore := m1.View().Hash()
		res, ev := m1.Apply(idx, raw)
		var want *sm.Result
		var wantEv []sm.Event
		if len(raw) < 2 {
			want = &sm.Result{Code: sm.CodeBadCommand, Revision: m.rev}
		} else {
			want, wantEv = m.apply(idx, c)
		}
		kinds[c.Kind]++
		codes[res.Code]++
		if !deepEqual(normResult(res), normResult(want)) {
			t.Fatalf("step %d: %+v\nresult %+v\nmodel  %+v", step, c, res, want)
		}
		if !eventsEqual(sortedByKey(ev), wantEv) {
			t.Fatalf("step %d: %+v\nevents:\n%s\nmodel:\n%s", step, c, fmtEvents(ev), fmtEvents(wantEv))
		}
		if res.Code != sm.CodeOK && m1.View().Hash() != hashBefore {
			t.Fatalf("step %d: code %d but the state changed", step, res.Code)
		}
		if len(ev) > 0 {
			hist, last := m1.View().Events(res.Revision, res.Revision, "", "\x00", 1000)
			if last != res.Revision || !eventsEqual(hist, wantEv) {
				t.Fatalf("step %d: history at %d:\n%s\nmodel:\n%s", step, res.Revision, fmtEvents(hist), fmtEvents(wantEv))
			}
		}
		batch = append(batch, dbsm.Entry{Index: idx, Cmd: raw})
		if g.rng.Intn(4) == 0 {
			flush()
		}
		if m3 != nil {
			m3.Apply(idx, raw)
		}
		if step%10 == 0 {
			checkAgainstModel(t, step, m1.View(), m, g)
			for i, mm := range []*sm.Machine{m1, m2, m3} {
				if mm == nil {
					continue
				}
				if err := mm.CheckTrees(); err != nil {
					t.Fatalf("step %d: replica %d: %v", step, i+1, err)
				}
			}
		}
		if step%100 == 99 {
			flush()
			if m1.View().Hash() != m2.View().Hash() {
				t.Fatalf("step %d: batched replica diverged", step)
			}
			if m3 != nil && m3.View().Hash() != m1.View().Hash() {
				t.Fatalf("step %d: recovered replica diverged", step)
			}
		}
		if step%600 == 300 {
			m3 = sm.New(nil)
			if err := m3.RecoverFromSnapshot(bytes.NewReader(snapshotBytes(t, m1.View())), nil, nil); err != nil {
				t.Fatal(err)
			}
			sameState(t, m1.View(), m3.View())
		}
	}
	flush()
	checkAgainstModel(t, steps, m1.View(), m, g)
	if h := m1.View().Hash(); h != m2.View().Hash() || h != m3.View().Hash() {
		t.Fatal("final hashes differ")
	}
	sameState(t, m1.View(), m2.View())
	sameState(t, m1.View(), m3.View())
	// The mix must really have exercised everything.
	for _, code := range []sm.Code{sm.CodeOK, sm.CodeBadCommand, sm.CodeLeaseNotFound, sm.CodeCompacted,
		sm.CodeFutureRevision, sm.CodeLeaseExists, sm.CodeDuplicateKey} {
		if codes[code] == 0 {
			t.Errorf("code %d never produced (codes %v)", code, codes)
		}
	}
	if m.compact < 10 || m.rev-m.compact < 5 || m.rev < int64(steps/4) || len(kinds) != int(lastKind) {
		t.Errorf("weak run: rev %d compact %d kinds %v", m.rev, m.compact, kinds)
	}
	t.Logf("seed %d: rev %d compact %d leases %d codes %v", seed, m.rev, m.compact, len(m.leases), codes)
}

// Two machines fed the same random log end with the same hash, and the hash
// does notice a difference.
func TestDeterminism(t *testing.T) {
	run := func(n int) (*sm.Machine, uint64) {
		m := newModel()
		g := newGen(42, m)
		mach := sm.New(nil)
		idx := uint64(0)
		for i := 0; i < n; i++ {
			c := g.command()
			idx += 1 + uint64(g.rng.Intn(2))
			mach.Apply(idx, sm.EncodeCommand(c))
			m.apply(idx, c)
		}
		return mach, mach.View().Hash()
	}
	a, ha := run(4000)
	b, hb := run(4000)
	if ha != hb {
		t.Fatalf("hashes differ: %x %x", ha, hb)
	}
	if !bytes.Equal(snapshotBytes(t, a.View()), snapshotBytes(t, b.View())) {
		t.Fatal("snapshots differ")
	}
	// A machine that stopped a little earlier, at a different revision, does
	// not share the hash.
	for n := 3990; n < 4000; n++ {
		if c, hc := run(n); c.View().Revision() != a.View().Revision() && hc == ha {
			t.Fatalf("prefix of %d commands has the same hash", n)
		}
	}
}

// Hash covers every replicated part of the state: machines that differ in
// any one of them hash differently.
func TestHashCoversState(t *testing.T) {
	base := func() *harness {
		h := newHarness(t)
		h.grant(1, 1000)
		h.put("a", "1")
		h.put("b", "1")
		return h
	}
	ref := base().view().Hash()
	for name, mutate := range map[string]func(h *harness){
		"value":          func(h *harness) { h.put("a", "2") },
		"same value":     func(h *harness) { h.put("a", "1") },
		"delete":         func(h *harness) { h.del("a", "") },
		"new key":        func(h *harness) { h.put("c", "") },
		"lease attached": func(h *harness) { h.putLease("a", "1", 1) },
		"lease ttl": func(h *harness) {
			h.mustOK(&sm.Command{Kind: sm.CmdRevoke, LeaseID: 1})
			h.grant(1, 999)
		},
		"lease granted": func(h *harness) { h.grant(2, 1000) },
		"compaction":    func(h *harness) { h.compact(2) },
		"member":        func(h *harness) { h.mustOK(&sm.Command{Kind: sm.CmdMember, Member: sm.MemberRecord{ID: 1, Name: "x"}}) },
		"member address": func(h *harness) {
			h.mustOK(&sm.Command{Kind: sm.CmdMember, Member: sm.MemberRecord{ID: 1, Name: "x", Address: "y"}})
		},
	} {
		h := base()
		mutate(h)
		if h.view().Hash() == ref {
			t.Errorf("%s: hash unchanged", name)
		}
	}
	// Renewing does not change the replicated data the hash covers, but the
	// same log always gives the same hash.
	h1, h2 := base(), base()
	h1.mustOK(&sm.Command{Kind: sm.CmdKeepAlive, LeaseID: 1})
	h2.mustOK(&sm.Command{Kind: sm.CmdKeepAlive, LeaseID: 1})
	if h1.view().Hash() != h2.view().Hash() {
		t.Fatal("same log, different hash")
	}
}
