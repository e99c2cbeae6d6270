package etcdv3

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/coordkit/coordkit/coord"
)

type kvServer struct {
	*Server
	pb.UnimplementedKVServer
}

func kv(k *coord.KeyValue) *mvccpb.KeyValue {
	if k == nil {
		return nil
	}
	return &mvccpb.KeyValue{Key: []byte(k.Key), Value: k.Value, CreateRevision: int64(k.CreateRevision),
		ModRevision: int64(k.ModRevision), Version: k.Version, Lease: int64(k.Lease)}
}

func kvs(in []*coord.KeyValue) []*mvccpb.KeyValue {
	out := make([]*mvccpb.KeyValue, len(in))
	for i, k := range in {
		out[i] = kv(k)
	}
	return out
}

var sortTargets = map[pb.RangeRequest_SortTarget]coord.SortTarget{
	pb.RangeRequest_KEY: coord.SortByKey, pb.RangeRequest_VERSION: coord.SortByVersion,
	pb.RangeRequest_CREATE: coord.SortByCreateRevision, pb.RangeRequest_MOD: coord.SortByModRevision,
	pb.RangeRequest_VALUE: coord.SortByValue,
}

// rangeOpts are r's options for coord's Get (or, in a Txn, OpGet: inTxn
// leaves out what a Txn's read cannot take).
func rangeOpts(r *pb.RangeRequest, inTxn bool) (opts []coord.OpOption, empty bool, err error) {
	if len(r.Key) == 0 {
		return nil, false, rpctypes.ErrGRPCEmptyKey
	}
	if r.MinModRevision != 0 || r.MaxModRevision != 0 {
		return nil, false, unsupported("Range's min_mod_revision and max_mod_revision")
	}
	opts, empty = keyRange(r.Key, r.RangeEnd)
	if r.Limit > 0 {
		opts = append(opts, coord.WithLimit(r.Limit))
	}
	if r.SortOrder != pb.RangeRequest_NONE || r.SortTarget != pb.RangeRequest_KEY {
		target, ok := sortTargets[r.SortTarget]
		if !ok {
			return nil, false, rpctypes.ErrGRPCInvalidSortOption
		}
		order := coord.SortAscend
		switch r.SortOrder {
		case pb.RangeRequest_DESCEND:
			order = coord.SortDescend
		case pb.RangeRequest_NONE, pb.RangeRequest_ASCEND:
		default:
			return nil, false, rpctypes.ErrGRPCInvalidSortOption
		}
		opts = append(opts, coord.WithSort(target, order))
	}
	if r.KeysOnly {
		opts = append(opts, coord.WithKeysOnly())
	}
	if r.CountOnly {
		opts = append(opts, coord.WithCountOnly())
	}
	if r.MinCreateRevision > 0 {
		opts = append(opts, coord.WithMinCreateRev(coord.Revision(r.MinCreateRevision)))
	}
	if r.MaxCreateRevision > 0 {
		opts = append(opts, coord.WithMaxCreateRev(coord.Revision(r.MaxCreateRevision)))
	}
	if !inTxn {
		if r.Serializable {
			opts = append(opts, coord.WithSerializable())
		}
		if r.Revision > 0 {
			opts = append(opts, coord.WithRev(coord.Revision(r.Revision)))
		}
	} else if r.Revision > 0 {
		return nil, false, unsupported("a revision in a Txn's Range")
	}
	return opts, empty, nil
}

// Range reads a key or a range, linearizably unless serializable.
func (s kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	opts, empty, err := rangeOpts(r, false)
	if err != nil {
		return nil, err
	}
	if empty { // still read, for the header
		opts = []coord.OpOption{coord.WithCountOnly(), coord.WithSerializable()}
		if !r.Serializable {
			opts = opts[:1]
		}
	}
	g, err := s.n.Get(ctx, string(r.Key), opts...)
	if err != nil {
		return nil, toGRPC(err)
	}
	if g.Header.Shard == coord.ShardAll {
		return nil, errSpansShards("the range")
	}
	resp := &pb.RangeResponse{Header: s.header(g.Header), Kvs: kvs(g.KVs), More: g.More, Count: g.Count}
	if empty {
		resp.Kvs, resp.Count, resp.More = nil, 0, false
	}
	return resp, nil
}

// Put sets a key, through a coord Txn (which keeps it in one shard).
func (s kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	op, err := putOp(r)
	if err != nil {
		return nil, err
	}
	t, err := s.n.Txn(ctx).Then(op).Commit()
	if err != nil {
		return nil, toGRPC(err)
	}
	return putResponse(s.Server, t.Responses[0].Put), nil
}

func putOp(r *pb.PutRequest) (coord.Op, error) {
	if len(r.Key) == 0 {
		return coord.Op{}, rpctypes.ErrGRPCEmptyKey
	}
	if r.IgnoreValue || r.IgnoreLease {
		return coord.Op{}, unsupported("Put's ignore_value and ignore_lease")
	}
	var opts []coord.OpOption
	if r.Lease != 0 {
		opts = append(opts, coord.WithLease(coord.LeaseID(r.Lease)))
	}
	if r.PrevKv {
		opts = append(opts, coord.WithPrevKV())
	}
	return coord.OpPut(string(r.Key), r.Value, opts...), nil
}

func putResponse(s *Server, p *coord.PutResponse) *pb.PutResponse {
	return &pb.PutResponse{Header: s.header(p.Header), PrevKv: kv(p.PrevKV)}
}

// DeleteRange deletes a key or a range in one revision, through a coord
// Txn: a range that spans shards is refused, with nothing deleted.
func (s kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	op, empty, err := deleteOp(r)
	if err != nil {
		return nil, err
	}
	if empty {
		g, err := s.n.Get(ctx, string(r.Key), coord.WithCountOnly())
		if err != nil {
			return nil, toGRPC(err)
		}
		return &pb.DeleteRangeResponse{Header: s.header(g.Header)}, nil
	}
	t, err := s.n.Txn(ctx).Then(op).Commit()
	if err != nil {
		return nil, toGRPC(err)
	}
	return deleteResponse(s.Server, t.Responses[0].Delete), nil
}

func deleteOp(r *pb.DeleteRangeRequest) (coord.Op, bool, error) {
	if len(r.Key) == 0 {
		return coord.Op{}, false, rpctypes.ErrGRPCEmptyKey
	}
	opts, empty := keyRange(r.Key, r.RangeEnd)
	if r.PrevKv {
		opts = append(opts, coord.WithPrevKV())
	}
	return coord.OpDelete(string(r.Key), opts...), empty, nil
}

func deleteResponse(s *Server, d *coord.DeleteResponse) *pb.DeleteRangeResponse {
	return &pb.DeleteRangeResponse{Header: s.header(d.Header), Deleted: d.Deleted, PrevKvs: kvs(d.PrevKVs)}
}

var compareResults = map[pb.Compare_CompareResult]string{
	pb.Compare_EQUAL: "=", pb.Compare_NOT_EQUAL: "!=", pb.Compare_LESS: "<", pb.Compare_GREATER: ">",
}

func compare(c *pb.Compare) (coord.Cmp, error) {
	if len(c.RangeEnd) != 0 {
		return coord.Cmp{}, unsupported("a compare over a range")
	}
	if len(c.Key) == 0 {
		return coord.Cmp{}, rpctypes.ErrGRPCEmptyKey
	}
	op, ok := compareResults[c.Result]
	if !ok {
		return coord.Cmp{}, unsupported("compare result " + c.Result.String())
	}
	key := string(c.Key)
	switch c.Target {
	case pb.Compare_VERSION:
		return coord.Compare(coord.Version(key), op, c.GetVersion()), nil
	case pb.Compare_CREATE:
		return coord.Compare(coord.CreateRevision(key), op, c.GetCreateRevision()), nil
	case pb.Compare_MOD:
		return coord.Compare(coord.ModRevision(key), op, c.GetModRevision()), nil
	case pb.Compare_VALUE:
		return coord.Compare(coord.Value(key), op, c.GetValue()), nil
	case pb.Compare_LEASE:
		return coord.Compare(coord.LeaseValue(key), op, c.GetLease()), nil
	}
	return coord.Cmp{}, unsupported("compare target " + c.Target.String())
}

func requestOps(reqs []*pb.RequestOp) ([]coord.Op, error) {
	ops := make([]coord.Op, 0, len(reqs))
	for _, r := range reqs {
		switch x := r.Request.(type) {
		case *pb.RequestOp_RequestRange:
			opts, empty, err := rangeOpts(x.RequestRange, true)
			if err != nil {
				return nil, err
			}
			if empty {
				return nil, unsupported("an empty range in a Txn")
			}
			ops = append(ops, coord.OpGet(string(x.RequestRange.Key), opts...))
		case *pb.RequestOp_RequestPut:
			op, err := putOp(x.RequestPut)
			if err != nil {
				return nil, err
			}
			ops = append(ops, op)
		case *pb.RequestOp_RequestDeleteRange:
			op, empty, err := deleteOp(x.RequestDeleteRange)
			if err != nil {
				return nil, err
			}
			if empty {
				return nil, unsupported("an empty range in a Txn")
			}
			ops = append(ops, op)
		case *pb.RequestOp_RequestTxn:
			return nil, unsupported("a Txn inside a Txn")
		default:
			return nil, unsupported("an empty request in a Txn")
		}
	}
	return ops, nil
}

// Txn runs a transaction atomically in one revision of one shard.
func (s kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	cmps := make([]coord.Cmp, len(r.Compare))
	for i, c := range r.Compare {
		var err error
		if cmps[i], err = compare(c); err != nil {
			return nil, err
		}
	}
	then, err := requestOps(r.Success)
	if err != nil {
		return nil, err
	}
	els, err := requestOps(r.Failure)
	if err != nil {
		return nil, err
	}
	t := s.n.Txn(ctx)
	if len(cmps) > 0 {
		t = t.If(cmps...)
	}
	res, err := t.Then(then...).Else(els...).Commit()
	if err != nil {
		return nil, toGRPC(err)
	}
	resp := &pb.TxnResponse{Header: s.header(res.Header), Succeeded: res.Succeeded}
	for _, o := range res.Responses {
		switch {
		case o.Put != nil:
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: putResponse(s.Server, o.Put)}})
		case o.Delete != nil:
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: deleteResponse(s.Server, o.Delete)}})
		case o.Get != nil:
			g := o.Get
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{
				Header: s.header(g.Header), Kvs: kvs(g.KVs), More: g.More, Count: g.Count}}})
		}
	}
	return resp, nil
}

// Compact compacts the history before a revision: on the one shard, or,
// on a cluster with several shards, refused (revisions are per shard).
func (s kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	if s.n.Shards() > 1 {
		return nil, errSpansShards("Compact (revisions are per shard)")
	}
	c, err := s.n.Compact(ctx, 0, coord.Revision(r.Revision))
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.CompactionResponse{Header: s.header(c.Header)}, nil
}
