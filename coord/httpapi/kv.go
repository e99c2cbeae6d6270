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
}

type putResponse struct {
	Header header    `json:"header"`
	PrevKV *keyValue `json:"prev_kv"`
}

func (a *api) put(ctx context.Context, req *putRequest) (any, error) {
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
	resp, err := a.n.Put(ctx, string(req.Key), value, opts...)
	if err != nil {
		return nil, err
	}
	return putResponse{Header: toHeader(resp.Header), PrevKV: toKV(resp.PrevKV)}, nil
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

func (a *api) rangeKeys(ctx context.Context, req *rangeRequest) (any, error) {
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
	resp, err := a.n.Get(ctx, string(req.Key), opts...)
	if err != nil {
		return nil, err
	}
	return rangeResponse{Header: toHeader(resp.Header), KVs: toKVs(resp.KVs), More: resp.More, Count: resp.Count}, nil
}

type deleteRangeRequest struct {
	Key      []byte `json:"key"`
	RangeEnd []byte `json:"range_end"`
	Prefix   bool   `json:"prefix"`
	PrevKV   bool   `json:"prev_kv"`
}

type deleteRangeResponse struct {
	Header  header      `json:"header"`
	Deleted int64       `json:"deleted"`
	PrevKVs []*keyValue `json:"prev_kvs"`
}

func (a *api) deleteRange(ctx context.Context, req *deleteRangeRequest) (any, error) {
	opts, err := span(req.Prefix, req.RangeEnd)
	if err != nil {
		return nil, err
	}
	if req.PrevKV {
		opts = append(opts, coord.WithPrevKV())
	}
	resp, err := a.n.Delete(ctx, string(req.Key), opts...)
	if err != nil {
		return nil, err
	}
	return deleteRangeResponse{Header: toHeader(resp.Header), Deleted: resp.Deleted, PrevKVs: toKVs(resp.PrevKVs)}, nil
}
