package coord

import (
	"context"
	"fmt"
	"io"

	"github.com/coordkit/coordkit/coord/internal/backup"
	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/request"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// ErrNotEmpty: Restore was asked to load a backup into a cluster that
// already holds keys.
var ErrNotEmpty = errdefs.ErrNotEmpty

// ErrBadBackup: Restore was given something that is not a complete,
// intact backup written by Snapshot.
var ErrBadBackup = errdefs.ErrBadBackup

// Snapshot writes a backup of every shard's keys to w, like etcdctl
// snapshot save. Each shard is read at one revision after a linearizable
// read, so each shard's part is a consistent cut; shards are read one after
// another, not at one instant (as shards are separate Raft groups). History
// and leases are not saved: keys are saved with the lease they were
// attached to, for the record. With WithSerializable (the only option it
// takes) it reads this member's replica without a quorum: the way to save
// what a survivor holds when a majority of voters is gone for good. It
// blocks until the backup is written or ctx ends; w receives a partial
// backup on error, which Restore refuses. Errors: ErrInvalidOption, those
// of Get, and w's.
func (n *Node) Snapshot(ctx context.Context, w io.Writer, opts ...OpOption) error {
	o, err := request.Build(request.Snapshot, opts)
	if err != nil {
		return err
	}
	if err := n.m.Host.Check(ctx); err != nil {
		return err
	}
	ctx, cancel := n.m.Host.WithTimeout(ctx)
	defer cancel()
	b := backup.NewWriter(w, backup.Header{Token: n.m.Cfg.ClusterToken, Shards: len(n.m.Shards), Member: n.m.Cfg.Name})
	for _, s := range n.m.Shards {
		v, err := s.Read(ctx, o.Serializable)
		if err != nil {
			return fmt.Errorf("coord: snapshot: %w", err)
		}
		all := sm.Op{Kind: sm.OpRange, Key: "\x00", End: "\x00"}
		r, code := v.Range(&all)
		if err := code.Err(); err != nil {
			return fmt.Errorf("coord: snapshot: %w", err)
		}
		if err := b.Shard(s.Index, v.Revision(), r.KVs); err != nil {
			return fmt.Errorf("coord: snapshot: %w", err)
		}
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("coord: snapshot: %w", err)
	}
	return nil
}

// RestoreResult says what Restore loaded.
type RestoreResult struct {
	Keys         int // keys written
	SkippedLease int // keys not written because they were attached to a lease
}

// Restore loads a backup written by Snapshot into this cluster, which must
// hold no key (restore into a new cluster, as with etcdutl snapshot
// restore). The whole backup is read and its checksum verified before
// anything is written. Keys are written through Raft in transactions of at
// most MaxTxnOps keys, so every member, and any member that joins later,
// gets them; they get new revisions (starting from this cluster's), and
// keys that were attached to a lease are skipped, since the sessions that
// owned them ended with the old cluster. The backup's shard count need not
// match this cluster's.
//
// It blocks until every key is written or ctx ends; an interrupted Restore
// leaves some keys written: empty the cluster (or start a new one) and run
// it again. Errors: ErrBadBackup (naming what is wrong), ErrNotEmpty,
// plus those of Txn.
func (n *Node) Restore(ctx context.Context, r io.Reader) (*RestoreResult, error) {
	if err := n.m.Host.Check(ctx); err != nil {
		return nil, err
	}
	keys, err := backup.Read(r)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.Lease != 0 {
			continue // skipped
		}
		if err := n.m.Limits().CheckKey(string(k.Key)); err != nil {
			return nil, fmt.Errorf("%w: key %q: %w", ErrBadBackup, k.Key, err)
		}
		if err := n.m.Limits().CheckValue(k.Value); err != nil {
			return nil, fmt.Errorf("%w: value of key %q: %w", ErrBadBackup, k.Key, err)
		}
	}
	g, err := n.Get(ctx, "\x00", WithFromKey(), WithCountOnly())
	if err != nil {
		return nil, err
	}
	if g.Count > 0 {
		return nil, fmt.Errorf("%w: it holds %d keys; restore into a new cluster", ErrNotEmpty, g.Count)
	}
	txns, skipped := backup.Plan(keys, n.ShardOf, n.m.Cfg.MaxTxnOps, n.m.Cfg.MaxRequestBytes/2)
	res := &RestoreResult{SkippedLease: skipped}
	for _, txn := range txns {
		ops := make([]Op, len(txn))
		for i, k := range txn {
			ops[i] = OpPut(string(k.Key), k.Value)
		}
		if _, err := n.Txn(ctx).Then(ops...).Commit(); err != nil {
			return res, fmt.Errorf("coord: restore after %d keys: %w", res.Keys, err)
		}
		res.Keys += len(txn)
	}
	return res, nil
}
