package member

import (
	"context"
	"fmt"
	"sort"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/request"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Part is one shard's share of an answer: the shard, and its revision when
// it answered.
type Part struct {
	Shard *Shard
	Rev   int64
}

// RangeResult is a Get's answer: from the one shard that holds the range
// (one Part), or, All, from every shard, merged.
type RangeResult struct {
	All   bool
	Parts []Part
	KVs   []*sm.KV
	Count int64
	More  bool
}

// Range reads key's range with options o (checked by the caller): on the
// shard that holds it, or on every shard, each up to the limit, merged in
// the requested order and cut to the limit. A range that spans shards
// cannot take a revision (each shard has its own): ErrCrossShard. A
// revision below the shard's compaction point is an *errdefs.Compacted.
func (m *Member) Range(ctx context.Context, key string, o *request.Options) (*RangeResult, error) {
	end := o.RangeEnd(key)
	op := sm.Op{Kind: sm.OpRange, Key: key, End: end, Range: o.RangeOpts()}
	shards := m.Shards
	si := m.Router().RangeShard(key, end)
	if si >= 0 {
		shards = shards[si : si+1]
	} else if o.Rev != 0 {
		return nil, fmt.Errorf("%w: WithRev on a range spanning shards (each shard has its own revisions)", errdefs.ErrCrossShard)
	}
	res := &RangeResult{All: si < 0}
	for _, s := range shards {
		v, err := s.Read(ctx, o.Serializable)
		if err != nil {
			return nil, err
		}
		r, code := v.Range(&op)
		if code == sm.CodeCompacted {
			return nil, &errdefs.Compacted{Rev: o.Rev, Oldest: v.CompactRevision()}
		}
		if err := code.Err(); err != nil {
			return nil, fmt.Errorf("%w (shard %d at revision %d)", err, s.Index, v.Revision())
		}
		res.Parts = append(res.Parts, Part{s, v.Revision()})
		res.Count += r.Count
		res.More = res.More || r.More
		res.KVs = append(res.KVs, r.KVs...)
	}
	if !res.All {
		return res, nil
	}
	if o.Sorted {
		sm.SortMerged(res.KVs, o.SortTarget, o.SortDesc)
	} else {
		sort.Slice(res.KVs, func(i, j int) bool { return res.KVs[i].Key < res.KVs[j].Key })
	}
	if o.Limit > 0 && int64(len(res.KVs)) > o.Limit {
		res.KVs = res.KVs[:o.Limit]
		res.More = true
	}
	return res, nil
}

// DeleteResult is a Delete's answer: from the one shard that holds the
// range (one Part), or, All, from every shard in turn.
type DeleteResult struct {
	All     bool
	Parts   []Part
	Deleted int64
	PrevKVs []*sm.KV
}

// Delete deletes key's range with options o (checked by the caller): on
// the shard that holds it, in one revision, or shard by shard.
func (m *Member) Delete(ctx context.Context, key string, o *request.Options) (*DeleteResult, error) {
	end := o.RangeEnd(key)
	op := sm.Op{Kind: sm.OpDelete, Key: key, End: end, PrevKV: o.PrevKV}
	shards := m.Shards
	si := m.Router().RangeShard(key, end)
	if si >= 0 {
		shards = shards[si : si+1]
	}
	res := &DeleteResult{All: si < 0}
	for _, s := range shards {
		r, err := s.Propose(ctx, &sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{op}}})
		if err != nil {
			return nil, err
		}
		if err := r.Code.Err(); err != nil {
			return nil, err
		}
		res.Parts = append(res.Parts, Part{s, r.Revision})
		res.Deleted += r.Ops[0].Deleted
		res.PrevKVs = append(res.PrevKVs, r.Ops[0].PrevKVs...)
	}
	return res, nil
}

// ListResult is a List's answer: from the one shard that holds the
// directory (one Part), or, All, from every shard, merged.
type ListResult struct {
	All     bool
	Parts   []Part
	Entries []sm.ListEntry
}

// List lists dir's children (dir ends in "/", or is ""): from the shard
// that holds dir, or, for the top level of several shards, from every
// shard, each subdirectory once, in name order.
func (m *Member) List(ctx context.Context, dir string, serializable bool) (*ListResult, error) {
	shards := m.Shards
	if si := m.Router().RangeShard(dir, request.PrefixEnd(dir)); si >= 0 && dir != "" && dir != "/" {
		shards = shards[si : si+1]
	}
	res := &ListResult{All: len(shards) > 1}
	seen := map[string]bool{}
	for _, s := range shards {
		v, err := s.Read(ctx, serializable)
		if err != nil {
			return nil, err
		}
		res.Parts = append(res.Parts, Part{s, v.Revision()})
		for _, e := range v.List(dir) {
			if e.Dir && seen[e.Name] {
				continue
			}
			seen[e.Name] = true
			res.Entries = append(res.Entries, e)
		}
	}
	if res.All {
		sort.SliceStable(res.Entries, func(i, j int) bool { return res.Entries[i].Name < res.Entries[j].Name })
	}
	return res, nil
}
