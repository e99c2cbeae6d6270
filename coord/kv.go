package coord

import (
	"context"
	"fmt"
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
	// What Txn.Commit does for a Txn of this one put, without building the
	// Txn: the put is the commonest write, and the builder's objects were
	// half of what a put allocated.
	var o request.Options
	if len(opts) > 0 {
		built, err := request.Build(request.Put, opts)
		if err != nil {
			return nil, err
		}
		o = *built
	}
	lim := n.m.Limits()
	if err := lim.CheckKey(key); err != nil {
		return nil, err
	}
	if err := lim.CheckValue(value); err != nil {
		return nil, err
	}
	if value == nil {
		value = []byte{}
	}
	s := n.m.Shards[n.m.Router().ShardOf(key)]
	cmd := &sm.Command{Kind: sm.CmdTxn}
	cmd.Txn.Then = cmd.One[:]
	cmd.One[0] = sm.Op{Kind: sm.OpPut, Key: key, Value: value, Lease: o.Lease, PrevKV: o.PrevKV}
	var leased []*sm.Op
	if o.Lease != 0 {
		leased = []*sm.Op{&cmd.One[0]}
	}
	res, err := n.commit(ctx, s, cmd, leased)
	if err != nil {
		return nil, err
	}
	resp := &PutResponse{Header: n.header(s, res.Revision)}
	if len(res.Ops) == 1 && len(res.Ops[0].PrevKVs) > 0 {
		resp.PrevKV = fromKV(res.Ops[0].PrevKVs[0])
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
	if err := n.m.Limits().CheckRange(key, o); err != nil {
		return nil, err
	}
	r, err := n.m.Range(ctx, key, o)
	if err != nil {
		return nil, compacted(err)
	}
	resp := &GetResponse{KVs: fromKVs(r.KVs), More: r.More, Count: r.Count}
	resp.Header, resp.Shards = n.headers(r.Parts, r.All)
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
	if err := n.m.Limits().CheckRange(key, o); err != nil {
		return nil, err
	}
	r, err := n.m.Delete(ctx, key, o)
	if err != nil {
		return nil, err
	}
	resp := &DeleteResponse{Deleted: r.Deleted, PrevKVs: fromKVs(r.PrevKVs)}
	resp.Header, resp.Shards = n.headers(r.Parts, r.All)
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
	if len(dir) > n.m.Cfg.MaxKeyBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrKeyTooLarge, len(dir), n.m.Cfg.MaxKeyBytes)
	}
	r, err := n.m.List(ctx, dir, o.Serializable)
	if err != nil {
		return nil, err
	}
	resp := &ListResponse{}
	for _, e := range r.Entries {
		resp.Entries = append(resp.Entries, ListEntry{Name: e.Name, Dir: e.Dir, KV: fromKV(e.KV)})
	}
	resp.Header, resp.Shards = n.headers(r.Parts, r.All)
	return resp, nil
}

// Compact removes the history of one shard before rev: reads and watches at
// older revisions then fail with ErrCompacted. The latest version of every
// key stays. shard is the shard's index (see ShardOf); revisions are per
// shard. Errors: ErrInvalidArgument for a shard out of range, ErrCompacted
// (a *CompactedError) when rev is not above the shard's compaction point,
// ErrFutureRevision, plus those of Put.
func (n *Node) Compact(ctx context.Context, shard int, rev Revision) (*CompactResponse, error) {
	if shard < 0 || shard >= len(n.m.Shards) {
		return nil, fmt.Errorf("%w: shard %d outside 0..%d", ErrInvalidArgument, shard, len(n.m.Shards)-1)
	}
	s := n.m.Shards[shard]
	res, err := s.Propose(ctx, &sm.Command{Kind: sm.CmdCompact, Revision: int64(rev)})
	if err != nil {
		return nil, err
	}
	if res.Code == sm.CodeCompacted {
		return nil, fmt.Errorf("coord: compact shard %d: %w", shard, &CompactedError{Revision: rev, Oldest: Revision(s.View().CompactRevision())})
	}
	if err := res.Code.Err(); err != nil {
		return nil, fmt.Errorf("%w: compact shard %d to %d", err, shard, rev)
	}
	return &CompactResponse{Header: n.header(s, res.Revision)}, nil
}
