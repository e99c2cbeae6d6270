package httpapi

import (
	"context"
	"fmt"

	"github.com/coordkit/coordkit/coord"
)

// Wire types of the contract. Keys and values are []byte so that
// encoding/json carries them as standard base64 with padding.

type header struct {
	Shard    int    `json:"shard"`
	Revision int64  `json:"revision"`
	RaftTerm uint64 `json:"raft_term"`
	Member   string `json:"member"`
}

func toHeader(h coord.Header) header {
	return header{Shard: h.Shard, Revision: int64(h.Revision), RaftTerm: h.RaftTerm, Member: h.Member}
}

type keyValue struct {
	Key            []byte `json:"key"`
	Value          []byte `json:"value"`
	CreateRevision int64  `json:"create_revision"`
	ModRevision    int64  `json:"mod_revision"`
	Version        int64  `json:"version"`
	Lease          int64  `json:"lease"`
}

func toKV(kv *coord.KeyValue) *keyValue {
	if kv == nil {
		return nil
	}
	v := kv.Value
	if v == nil {
		v = []byte{} // "" rather than null, for keys_only
	}
	return &keyValue{
		Key: []byte(kv.Key), Value: v,
		CreateRevision: int64(kv.CreateRevision), ModRevision: int64(kv.ModRevision),
		Version: kv.Version, Lease: int64(kv.Lease),
	}
}

func toKVs(kvs []*coord.KeyValue) []*keyValue {
	out := make([]*keyValue, 0, len(kvs)) // [] rather than null
	for _, kv := range kvs {
		out = append(out, toKV(kv))
	}
	return out
}

type putRequest struct {
	Key    []byte `json:"key"`
	Value  []byte `json:"value"`
	Lease  int64  `json:"lease"`
	PrevKV bool   `json:"prev_kv"`
	// IfModRevision makes the put conditional (compare-and-swap); nil means
	// unconditional, 0 "the key must not exist".
	IfModRevision *int64 `json:"if_mod_revision"`
}

type putResponse struct {
	Header header    `json:"header"`
	PrevKV *keyValue `json:"prev_kv"`
}

// args returns the put's value and options.
func (req *putRequest) args() ([]byte, []coord.OpOption) {
	var opts []coord.OpOption
	if req.Lease != 0 {
		opts = append(opts, coord.WithLease(coord.LeaseID(req.Lease)))
	}
	if req.PrevKV {
		opts = append(opts, coord.WithPrevKV())
	}
	value := req.Value
	if value == nil {
		value = []byte{}
	}
	return value, opts
}

// op returns the put as a Txn operation.
func (req *putRequest) op() coord.Op {
	value, opts := req.args()
	return coord.OpPut(string(req.Key), value, opts...)
}

func (a *api) put(ctx context.Context, req *putRequest) (any, error) {
	if req.IfModRevision != nil {
		tr, err := a.ifModRevision(ctx, req.Key, *req.IfModRevision, req.op())
		if err != nil {
			return nil, err
		}
		return putResponse{Header: toHeader(tr.Header), PrevKV: toKV(tr.Responses[0].Put.PrevKV)}, nil
	}
	value, opts := req.args()
	resp, err := a.n.Put(ctx, string(req.Key), value, opts...)
	if err != nil {
		return nil, err
	}
	return putResponse{Header: toHeader(resp.Header), PrevKV: toKV(resp.PrevKV)}, nil
}

// ifModRevision runs op only if key's mod revision is rev (0: the key does
// not exist), in one Txn; otherwise it fails with errCompareFailed naming
// the key's current mod revision.
func (a *api) ifModRevision(ctx context.Context, key []byte, rev int64, op coord.Op) (*coord.TxnResponse, error) {
	if rev < 0 {
		return nil, fmt.Errorf("%w: if_mod_revision %d is negative", coord.ErrInvalidOption, rev)
	}
	k := string(key)
	tr, err := a.n.Txn(ctx).If(coord.Compare(coord.ModRevision(k), "=", coord.Revision(rev))).
		Then(op).Else(coord.OpGet(k, coord.WithKeysOnly())).Commit()
	if err != nil {
		return nil, err
	}
	if tr.Succeeded {
		return tr, nil
	}
	if g := tr.Responses[0].Get; g != nil && len(g.KVs) > 0 {
		return nil, fmt.Errorf("%w: key %q has mod_revision %d, not %d", errCompareFailed, k, g.KVs[0].ModRevision, rev)
	}
	return nil, fmt.Errorf("%w: key %q does not exist (mod_revision 0), not %d", errCompareFailed, k, rev)
}

type rangeRequest struct {
	Key          []byte `json:"key"`
	RangeEnd     []byte `json:"range_end"`
	Prefix       bool   `json:"prefix"`
	Serializable bool   `json:"serializable"`
	Limit        int64  `json:"limit"`
	Revision     int64  `json:"revision"`
	KeysOnly     bool   `json:"keys_only"`
	CountOnly    bool   `json:"count_only"`
}

type rangeResponse struct {
	Header header      `json:"header"`
	KVs    []*keyValue `json:"kvs"`
	More   bool        `json:"more"`
	Count  int64       `json:"count"`
}

// errPrefixAndRangeEnd matches ErrInvalidOption so that it maps to 400 like
// coord's own option errors.
var errPrefixAndRangeEnd = fmt.Errorf("%w: prefix and range_end are exclusive", coord.ErrInvalidOption)

// span turns the range fields shared by range and deleterange into options.
func span(prefix bool, rangeEnd []byte) ([]coord.OpOption, error) {
	switch {
	case prefix && len(rangeEnd) > 0:
		return nil, errPrefixAndRangeEnd
	case prefix:
		return []coord.OpOption{coord.WithPrefix()}, nil
	case len(rangeEnd) > 0:
		return []coord.OpOption{coord.WithRange(string(rangeEnd))}, nil
	}
	return nil, nil
}

// options turns the range fields into options; span checks that prefix
// and range_end are not both given.
func (req *rangeRequest) options() ([]coord.OpOption, error) {
	opts, err := span(req.Prefix, req.RangeEnd)
	if err != nil {
		return nil, err
	}
	if req.Serializable {
		opts = append(opts, coord.WithSerializable())
	}
	if req.Limit != 0 {
		opts = append(opts, coord.WithLimit(req.Limit))
	}
	if req.Revision != 0 {
		opts = append(opts, coord.WithRev(coord.Revision(req.Revision)))
	}
	if req.KeysOnly {
		opts = append(opts, coord.WithKeysOnly())
	}
	if req.CountOnly {
		opts = append(opts, coord.WithCountOnly())
	}
	return opts, nil
}

func toRangeResponse(resp *coord.GetResponse) rangeResponse {
	return rangeResponse{Header: toHeader(resp.Header), KVs: toKVs(resp.KVs), More: resp.More, Count: resp.Count}
}

func (a *api) rangeKeys(ctx context.Context, req *rangeRequest) (any, error) {
	opts, err := req.options()
	if err != nil {
		return nil, err
	}
	resp, err := a.n.Get(ctx, string(req.Key), opts...)
	if err != nil {
		return nil, err
	}
	return toRangeResponse(resp), nil
}

type deleteRangeRequest struct {
	Key      []byte `json:"key"`
	RangeEnd []byte `json:"range_end"`
	Prefix   bool   `json:"prefix"`
	PrevKV   bool   `json:"prev_kv"`
	// IfModRevision makes the delete of a single key conditional, as in
	// putRequest.
	IfModRevision *int64 `json:"if_mod_revision"`
}

type deleteRangeResponse struct {
	Header  header      `json:"header"`
	Deleted int64       `json:"deleted"`
	PrevKVs []*keyValue `json:"prev_kvs"`
}

func (req *deleteRangeRequest) options() ([]coord.OpOption, error) {
	opts, err := span(req.Prefix, req.RangeEnd)
	if err != nil {
		return nil, err
	}
	if req.PrevKV {
		opts = append(opts, coord.WithPrevKV())
	}
	return opts, nil
}

func toDeleteResponse(resp *coord.DeleteResponse) deleteRangeResponse {
	return deleteRangeResponse{Header: toHeader(resp.Header), Deleted: resp.Deleted, PrevKVs: toKVs(resp.PrevKVs)}
}

func (a *api) deleteRange(ctx context.Context, req *deleteRangeRequest) (any, error) {
	opts, err := req.options()
	if err != nil {
		return nil, err
	}
	if req.IfModRevision == nil {
		resp, err := a.n.Delete(ctx, string(req.Key), opts...)
		if err != nil {
			return nil, err
		}
		return toDeleteResponse(resp), nil
	}
	if req.Prefix || len(req.RangeEnd) > 0 {
		return nil, fmt.Errorf("%w: if_mod_revision applies to a single key, not with prefix or range_end", coord.ErrInvalidOption)
	}
	tr, err := a.ifModRevision(ctx, req.Key, *req.IfModRevision, coord.OpDelete(string(req.Key), opts...))
	if err != nil {
		return nil, err
	}
	return toDeleteResponse(tr.Responses[0].Delete), nil
}

// Transactions.

type txnRequest struct {
	Compare []txnCompare `json:"compare"`
	Success []requestOp  `json:"success"`
	Failure []requestOp  `json:"failure"`
}

// txnCompare is one condition: value compares Value, the other targets
// compare Number.
type txnCompare struct {
	Key    []byte `json:"key"`
	Target string `json:"target"`
	Result string `json:"result"`
	Value  []byte `json:"value"`
	Number *int64 `json:"number"`
}

// requestOp holds exactly one operation.
type requestOp struct {
	Put         *putRequest         `json:"put"`
	Range       *rangeRequest       `json:"range"`
	DeleteRange *deleteRangeRequest `json:"delete_range"`
}

type txnResponse struct {
	Header    header       `json:"header"`
	Succeeded bool         `json:"succeeded"`
	Responses []responseOp `json:"responses"`
}

type responseOp struct {
	Put         *putResponse         `json:"put,omitempty"`
	Range       *rangeResponse       `json:"range,omitempty"`
	DeleteRange *deleteRangeResponse `json:"delete_range,omitempty"`
}

var cmpTargets = map[string]func(string) coord.CmpTarget{
	"value":   coord.Value,
	"version": coord.Version,
	"create":  coord.CreateRevision,
	"mod":     coord.ModRevision,
	"lease":   coord.LeaseValue,
}

func (c *txnCompare) cmp(i int) (coord.Cmp, error) {
	target, ok := cmpTargets[c.Target]
	if !ok {
		return coord.Cmp{}, fmt.Errorf("%w: compare %d: target %q (want value, version, create, mod or lease)", coord.ErrInvalidOption, i, c.Target)
	}
	if c.Target == "value" {
		if c.Number != nil {
			return coord.Cmp{}, fmt.Errorf("%w: compare %d: target value takes \"value\", not \"number\"", coord.ErrInvalidOption, i)
		}
		v := c.Value
		if v == nil {
			v = []byte{}
		}
		return coord.Compare(target(string(c.Key)), c.Result, v), nil
	}
	if c.Value != nil {
		return coord.Cmp{}, fmt.Errorf("%w: compare %d: target %s takes \"number\", not \"value\"", coord.ErrInvalidOption, i, c.Target)
	}
	var n int64
	if c.Number != nil {
		n = *c.Number
	}
	return coord.Compare(target(string(c.Key)), c.Result, n), nil
}

func (o *requestOp) op(branch string, i int) (coord.Op, error) {
	n := 0
	for _, set := range []bool{o.Put != nil, o.Range != nil, o.DeleteRange != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return coord.Op{}, fmt.Errorf("%w: %s operation %d must hold exactly one of put, range, delete_range", coord.ErrInvalidOption, branch, i)
	}
	switch {
	case o.Put != nil:
		if o.Put.IfModRevision != nil {
			return coord.Op{}, fmt.Errorf("%w: %s operation %d: if_mod_revision inside a txn; compare mod instead", coord.ErrInvalidOption, branch, i)
		}
		return o.Put.op(), nil
	case o.Range != nil:
		opts, err := o.Range.options()
		if err != nil {
			return coord.Op{}, err
		}
		return coord.OpGet(string(o.Range.Key), opts...), nil
	default:
		if o.DeleteRange.IfModRevision != nil {
			return coord.Op{}, fmt.Errorf("%w: %s operation %d: if_mod_revision inside a txn; compare mod instead", coord.ErrInvalidOption, branch, i)
		}
		opts, err := o.DeleteRange.options()
		if err != nil {
			return coord.Op{}, err
		}
		return coord.OpDelete(string(o.DeleteRange.Key), opts...), nil
	}
}

func ops(branch string, reqs []requestOp) ([]coord.Op, error) {
	out := make([]coord.Op, 0, len(reqs))
	for i := range reqs {
		op, err := reqs[i].op(branch, i)
		if err != nil {
			return nil, err
		}
		out = append(out, op)
	}
	return out, nil
}

func (a *api) txn(ctx context.Context, req *txnRequest) (any, error) {
	cmps := make([]coord.Cmp, 0, len(req.Compare))
	for i := range req.Compare {
		c, err := req.Compare[i].cmp(i)
		if err != nil {
			return nil, err
		}
		cmps = append(cmps, c)
	}
	then, err := ops("success", req.Success)
	if err != nil {
		return nil, err
	}
	els, err := ops("failure", req.Failure)
	if err != nil {
		return nil, err
	}
	tr, err := a.n.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
	if err != nil {
		return nil, err
	}
	out := txnResponse{Header: toHeader(tr.Header), Succeeded: tr.Succeeded, Responses: make([]responseOp, 0, len(tr.Responses))}
	for _, r := range tr.Responses {
		var ro responseOp
		switch {
		case r.Put != nil:
			ro.Put = &putResponse{Header: toHeader(r.Put.Header), PrevKV: toKV(r.Put.PrevKV)}
		case r.Get != nil:
			rr := toRangeResponse(r.Get)
			ro.Range = &rr
		case r.Delete != nil:
			dr := toDeleteResponse(r.Delete)
			ro.DeleteRange = &dr
		}
		out.Responses = append(out.Responses, ro)
	}
	return out, nil
}

type compactRequest struct {
	Shard    int   `json:"shard"`
	Revision int64 `json:"revision"`
}

type compactResponse struct {
	Header header `json:"header"`
}

func (a *api) compact(ctx context.Context, req *compactRequest) (any, error) {
	resp, err := a.n.Compact(ctx, req.Shard, coord.Revision(req.Revision))
	if err != nil {
		return nil, err
	}
	return compactResponse{Header: toHeader(resp.Header)}, nil
}

type listRequest struct {
	Dir          []byte `json:"dir"`
	Serializable bool   `json:"serializable"`
}

type listEntry struct {
	Name []byte    `json:"name"`
	Dir  bool      `json:"dir"`
	KV   *keyValue `json:"kv"`
}

type listResponse struct {
	Header  header      `json:"header"`
	Entries []listEntry `json:"entries"`
}

// list answers the immediate children of a directory (coord.Node.List).
func (a *api) list(ctx context.Context, req *listRequest) (any, error) {
	var opts []coord.OpOption
	if req.Serializable {
		opts = append(opts, coord.WithSerializable())
	}
	resp, err := a.n.List(ctx, string(req.Dir), opts...)
	if err != nil {
		return nil, err
	}
	out := listResponse{Header: toHeader(resp.Header), Entries: make([]listEntry, 0, len(resp.Entries))}
	for _, e := range resp.Entries {
		out.Entries = append(out.Entries, listEntry{Name: []byte(e.Name), Dir: e.Dir, KV: toKV(e.KV)})
	}
	return out, nil
}
