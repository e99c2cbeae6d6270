package coord

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/coordkit/coordkit/coord/internal/request"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Put sets key to value, creating the key or adding a version. Options:
// WithLease, WithPrevKV. The store keeps a copy of value: the caller may
// reuse the slice once Put returns.
//
// It blocks until the write is applied on this member, or ctx ends (a ctx
// without deadline gets Config.RequestTimeout). Errors: ErrEmptyKey,
// ErrKeyTooLarge, ErrValueTooLarge, ErrLeaseNotFound, ErrInvalidOption (the
// store is unchanged for all of these), ErrNoLeader, ErrClosed, and
// ErrOutcomeUnknown (with context.DeadlineExceeded or Canceled) when the
// write may or may not have been applied.
func (n *Node) Put(ctx context.Context, key string, value []byte, opts ...OpOption) (*PutResponse, error) {
	r, err := n.Txn(ctx).Then(OpPut(key, value, opts...)).Commit()
	if err != nil {
		return nil, err
	}
	resp := &PutResponse{Header: r.Header}
	if p := r.Responses[0].Put; p != nil {
		resp.PrevKV = p.PrevKV
	}
	return resp, nil
}

// Get reads a key, or a range of keys with WithPrefix, WithFromKey or
// WithRange. Other options: WithRev, WithSerializable, WithLimit, WithSort,
// WithKeysOnly, WithCountOnly.
//
// Consistency: linearizable by default (a ReadIndex round with the shard's
// leader, then a read of this member's replica); WithSerializable reads this
// replica with no network. A range that spans shards is read from each shard
// and merged; it cannot take WithRev (each shard has its own revisions), and
// its reads of different shards are not one atomic snapshot.
//
// Errors: ErrEmptyKey, ErrKeyTooLarge, ErrInvalidOption, ErrCompacted,
// ErrFutureRevision, ErrNoLeader, ErrClosed, context errors.
func (n *Node) Get(ctx context.Context, key string, opts ...OpOption) (*GetResponse, error) {
	o, err := request.Build(request.Get, opts)
	if err != nil {
		return nil, err
	}
	if err := n.limits().CheckRange(key, o); err != nil {
		return nil, err
	}
	end := o.RangeEnd(key)
	smOp := sm.Op{Kind: sm.OpRange, Key: key, End: end, Range: o.RangeOpts()}
	if si := n.router().RangeShard(key, end); si >= 0 {
		s := n.shards[si]
		v, err := s.Read(ctx, o.Serializable)
		if err != nil {
			return nil, err
		}
		r, code := v.Range(&smOp)
		if code == sm.CodeCompacted {
			return nil, compactedError(Revision(o.Rev), v.CompactRevision())
		}
		if err := code.Err(); err != nil {
			return nil, fmt.Errorf("%w (shard %d at revision %d)", err, s.Index, v.Revision())
		}
		return &GetResponse{Header: n.header(s, v.Revision()), KVs: fromKVs(r.KVs), More: r.More, Count: r.Count}, nil
	}
	if o.Rev != 0 {
		return nil, fmt.Errorf("%w: WithRev on a range spanning shards (each shard has its own revisions)", ErrCrossShard)
	}
	// Fan out: every shard returns up to the limit, then merge.
	resp := &GetResponse{Header: Header{Shard: ShardAll, Member: n.cfg.Name}}
	var all []*sm.KV
	for _, s := range n.shards {
		v, err := s.Read(ctx, o.Serializable)
		if err != nil {
			return nil, err
		}
		r, code := v.Range(&smOp)
		if err := code.Err(); err != nil {
			return nil, err
		}
		resp.Shards = append(resp.Shards, n.header(s, v.Revision()))
		resp.Count += r.Count
		resp.More = resp.More || r.More
		all = append(all, r.KVs...)
	}
	if o.Sorted {
		sm.SortMerged(all, o.SortTarget, o.SortDesc)
	} else {
		sort.Slice(all, func(i, j int) bool { return all[i].Key < all[j].Key })
	}
	if o.Limit > 0 && int64(len(all)) > o.Limit {
		all = all[:o.Limit]
		resp.More = true
	}
	resp.KVs = fromKVs(all)
	return resp, nil
}

// Delete removes a key, or a range with WithPrefix, WithFromKey or WithRange;
// WithPrevKV returns what was deleted. Deleting a missing key is not an
// error (Deleted is 0). All deletes in one shard happen in one revision; a
// range spanning shards is deleted shard by shard, not atomically.
//
// Blocking, errors and consistency as for Put.
func (n *Node) Delete(ctx context.Context, key string, opts ...OpOption) (*DeleteResponse, error) {
	o, err := request.Build(request.Delete, opts)
	if err != nil {
		return nil, err
	}
	if err := n.limits().CheckRange(key, o); err != nil {
		return nil, err
	}
	end := o.RangeEnd(key)
	smOp := sm.Op{Kind: sm.OpDelete, Key: key, End: end, PrevKV: o.PrevKV}
	one := func(s *shard) (*DeleteResponse, error) {
		res, err := s.Propose(ctx, &sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{smOp}}})
		if err != nil {
			return nil, err
		}
		if err := res.Code.Err(); err != nil {
			return nil, err
		}
		r := res.Ops[0]
		return &DeleteResponse{Header: n.header(s, res.Revision), Deleted: r.Deleted, PrevKVs: fromKVs(r.PrevKVs)}, nil
	}
	if si := n.router().RangeShard(key, end); si >= 0 {
		return one(n.shards[si])
	}
	resp := &DeleteResponse{Header: Header{Shard: ShardAll, Member: n.cfg.Name}}
	for _, s := range n.shards {
		r, err := one(s)
		if err != nil {
			return nil, err
		}
		resp.Shards = append(resp.Shards, r.Header)
		resp.Deleted += r.Deleted
		resp.PrevKVs = append(resp.PrevKVs, r.PrevKVs...)
	}
	return resp, nil
}

// List returns the immediate children of a directory, the way ls does: the
// keys directly under dir and each subdirectory once (a name ending in "/"),
// in name order. dir "" or "/" lists the top level; a dir not ending in "/"
// gets one appended. Options: WithSerializable.
//
// Consistency and errors as for Get. Listing the top level of a cluster with
// several shards reads every shard.
func (n *Node) List(ctx context.Context, dir string, opts ...OpOption) (*ListResponse, error) {
	o, err := request.Build(request.List, opts)
	if err != nil {
		return nil, err
	}
	if dir != "" && !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	if len(dir) > n.cfg.MaxKeyBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrKeyTooLarge, len(dir), n.cfg.MaxKeyBytes)
	}
	shards := n.shards
	if si := n.router().RangeShard(dir, request.PrefixEnd(dir)); si >= 0 && dir != "" && dir != "/" {
		shards = shards[si : si+1]
	}
	resp := &ListResponse{}
	seen := map[string]bool{}
	for _, s := range shards {
		v, err := s.Read(ctx, o.Serializable)
		if err != nil {
			return nil, err
		}
		resp.Shards = append(resp.Shards, n.header(s, v.Revision()))
		for _, e := range v.List(dir) {
			if e.Dir && seen[e.Name] {
				continue
			}
			seen[e.Name] = true
			resp.Entries = append(resp.Entries, ListEntry{Name: e.Name, Dir: e.Dir, KV: fromKV(e.KV)})
		}
	}
	if len(shards) == 1 {
		resp.Header, resp.Shards = resp.Shards[0], nil
	} else {
		resp.Header = Header{Shard: ShardAll, Member: n.cfg.Name}
		sort.SliceStable(resp.Entries, func(i, j int) bool { return resp.Entries[i].Name < resp.Entries[j].Name })
	}
	return resp, nil
}

// Compact removes the history of one shard before rev: reads and watches at
// older revisions then fail with ErrCompacted. The latest version of every
// key stays. shard is the shard's index (see ShardOf); revisions are per
// shard. Errors: ErrInvalidArgument for a shard out of range, ErrCompacted
// (a *CompactedError) when rev is not above the shard's compaction point,
// ErrFutureRevision, plus those of Put.
func (n *Node) Compact(ctx context.Context, shard int, rev Revision) (*CompactResponse, error) {
	if shard < 0 || shard >= len(n.shards) {
		return nil, fmt.Errorf("%w: shard %d outside 0..%d", ErrInvalidArgument, shard, len(n.shards)-1)
	}
	s := n.shards[shard]
	res, err := s.Propose(ctx, &sm.Command{Kind: sm.CmdCompact, Revision: int64(rev)})
	if err != nil {
		return nil, err
	}
	if res.Code == sm.CodeCompacted {
		return nil, fmt.Errorf("coord: compact shard %d: %w", shard, compactedError(rev, s.View().CompactRevision()))
	}
	if err := res.Code.Err(); err != nil {
		return nil, fmt.Errorf("%w: compact shard %d to %d", err, shard, rev)
	}
	return &CompactResponse{Header: n.header(s, res.Revision)}, nil
}
