package sm_test

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// harness drives one Machine with increasing Raft indexes.
type harness struct {
	t   testing.TB
	m   *sm.Machine
	idx uint64
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return &harness{t: t, m: sm.New(nil)}
}

func (h *harness) view() *sm.View { return h.m.View() }

// apply encodes c and applies it at the next index.
func (h *harness) apply(c *sm.Command) (*sm.Result, []sm.Event) {
	h.t.Helper()
	h.idx++
	res, ev := h.m.Apply(h.idx, sm.EncodeCommand(c))
	if res == nil {
		h.t.Fatalf("Apply returned nil result for %+v", c)
	}
	return res, ev
}

// mustOK applies c and fails unless it returns CodeOK.
func (h *harness) mustOK(c *sm.Command) (*sm.Result, []sm.Event) {
	h.t.Helper()
	res, ev := h.apply(c)
	if res.Code != sm.CodeOK {
		h.t.Fatalf("command %+v: code %d, want OK", c, res.Code)
	}
	return res, ev
}

func (h *harness) txn(then ...sm.Op) (*sm.Result, []sm.Event) {
	h.t.Helper()
	return h.apply(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: then}})
}

// put writes key=val and returns the new revision.
func (h *harness) put(key, val string) int64 {
	h.t.Helper()
	res, _ := h.mustOK(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp(key, val)}}})
	return res.Revision
}

func (h *harness) putLease(key, val string, lease int64) int64 {
	h.t.Helper()
	op := putOp(key, val)
	op.Lease = lease
	res, _ := h.mustOK(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{op}}})
	return res.Revision
}

// del deletes key (end as in Op) and returns the revision afterwards.
func (h *harness) del(key, end string) int64 {
	h.t.Helper()
	res, _ := h.mustOK(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpDelete, Key: key, End: end}}}})
	return res.Revision
}

func (h *harness) grant(id, ttl int64) {
	h.t.Helper()
	h.mustOK(&sm.Command{Kind: sm.CmdGrant, LeaseID: id, TTL: ttl})
}

func (h *harness) compact(rev int64) *sm.Result {
	h.t.Helper()
	res, _ := h.apply(&sm.Command{Kind: sm.CmdCompact, Revision: rev})
	return res
}

func putOp(key, val string) sm.Op {
	return sm.Op{Kind: sm.OpPut, Key: key, Value: []byte(val)}
}

func rangeOp(key, end string, o sm.RangeOpts) *sm.Op {
	return &sm.Op{Kind: sm.OpRange, Key: key, End: end, Range: o}
}

// get reads one key at the latest revision; nil if absent.
func get(t testing.TB, v *sm.View, key string) *sm.KV {
	t.Helper()
	r, code := v.Range(rangeOp(key, "", sm.RangeOpts{}))
	if code != sm.CodeOK {
		t.Fatalf("range %q: code %d", key, code)
	}
	switch len(r.KVs) {
	case 0:
		return nil
	case 1:
		return r.KVs[0]
	}
	t.Fatalf("range %q: %d kvs", key, len(r.KVs))
	return nil
}

// rangeAll returns every live key at rev (0: latest).
func rangeAll(t testing.TB, v *sm.View, rev int64) []*sm.KV {
	t.Helper()
	r, code := v.Range(rangeOp("", "\x00", sm.RangeOpts{Revision: rev}))
	if code != sm.CodeOK {
		t.Fatalf("range all at %d: code %d", rev, code)
	}
	if r.Count != int64(len(r.KVs)) || r.More {
		t.Fatalf("range all at %d: count %d, %d kvs, more %v", rev, r.Count, len(r.KVs), r.More)
	}
	return r.KVs
}

func keysOf(kvs []*sm.KV) []string {
	out := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, kv.Key)
	}
	return out
}

func fmtKV(kv *sm.KV) string {
	if kv == nil {
		return "<nil>"
	}
	return fmt.Sprintf("{%q=%q c%d m%d v%d l%d}", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
}

func fmtKVs(kvs []*sm.KV) string {
	s := make([]string, len(kvs))
	for i, kv := range kvs {
		s[i] = fmtKV(kv)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func fmtEvent(e sm.Event) string {
	kind := "PUT"
	if e.Delete {
		kind = "DEL"
	}
	return kind + " " + fmtKV(e.KV) + " prev=" + fmtKV(e.PrevKV)
}

func fmtEvents(evs []sm.Event) string {
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = fmtEvent(e)
	}
	return strings.Join(s, "\n")
}

// kvEqual compares KVs treating nil and empty values alike.
func kvEqual(a, b *sm.KV) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Key == b.Key && bytes.Equal(a.Value, b.Value) && a.CreateRevision == b.CreateRevision &&
		a.ModRevision == b.ModRevision && a.Version == b.Version && a.Lease == b.Lease
}

func kvsEqual(a, b []*sm.KV) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !kvEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}

func eventEqual(a, b sm.Event) bool {
	return a.Delete == b.Delete && kvEqual(a.KV, b.KV) && kvEqual(a.PrevKV, b.PrevKV)
}

func eventsEqual(a, b []sm.Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !eventEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}

func wantKV(t testing.TB, got *sm.KV, want sm.KV) {
	t.Helper()
	if !kvEqual(got, &want) {
		t.Fatalf("got %s, want %s", fmtKV(got), fmtKV(&want))
	}
}

func wantEvents(t testing.TB, got, want []sm.Event) {
	t.Helper()
	if !eventsEqual(got, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", fmtEvents(got), fmtEvents(want))
	}
}

// normCommand maps empty slices to nil so DeepEqual compares meaning.
func normCommand(c *sm.Command) *sm.Command {
	n := *c
	n.One = [1]sm.Op{}
	n.Txn.Compares = nil
	for _, cp := range c.Txn.Compares {
		if len(cp.Value) == 0 {
			cp.Value = nil
		}
		n.Txn.Compares = append(n.Txn.Compares, cp)
	}
	normOps := func(ops []sm.Op) []sm.Op {
		var out []sm.Op
		for _, op := range ops {
			if len(op.Value) == 0 {
				op.Value = nil
			}
			op.Buf = nil
			out = append(out, op)
		}
		return out
	}
	n.Txn.Then = normOps(c.Txn.Then)
	n.Txn.Else = normOps(c.Txn.Else)
	if len(c.Expire) == 0 {
		n.Expire = nil
	}
	return &n
}

func normResult(r *sm.Result) *sm.Result {
	n := sm.Result{Code: r.Code, Revision: r.Revision, Succeeded: r.Succeeded, TTL: r.TTL}
	normKVs := func(kvs []*sm.KV) []*sm.KV {
		var out []*sm.KV
		for _, kv := range kvs {
			c := *kv
			if len(c.Value) == 0 {
				c.Value = nil
			}
			out = append(out, &c)
		}
		return out
	}
	for _, o := range r.Ops {
		o.PrevKVs = normKVs(o.PrevKVs)
		o.KVs = normKVs(o.KVs)
		n.Ops = append(n.Ops, o)
	}
	return &n
}

func deepEqual(a, b any) bool { return reflect.DeepEqual(a, b) }
