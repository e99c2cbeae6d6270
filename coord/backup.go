package coord

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// ErrNotEmpty: Restore was asked to load a backup into a cluster that
// already holds keys.
var ErrNotEmpty = errors.New("coord: cluster not empty")

// ErrBadBackup: Restore was given something that is not a complete,
// intact backup written by Snapshot.
var ErrBadBackup = errors.New("coord: bad backup")

// The backup format is JSON lines, so that it can be inspected with a text
// tool: a header, then per shard a shard line and its keys, then the
// SHA-256 of every byte before the last line. Keys and values are JSON
// byte strings (base64), so binary keys survive.
const backupFormat = "coordkit-backup"

type backupHeader struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Token   string    `json:"cluster_token"`
	Shards  int       `json:"shards"`
	Member  string    `json:"member"`
	Created time.Time `json:"created"`
}

type backupShard struct {
	Shard    int   `json:"shard"`
	Revision int64 `json:"revision"`
	Keys     int   `json:"keys"`
}

type backupKey struct {
	Key   []byte `json:"k"`
	Value []byte `json:"v"`
	Lease int64  `json:"l,omitempty"`
}

type backupTrailer struct {
	SHA256 string `json:"sha256"`
}

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
	o, err := buildOp(kindSnapshot, opts)
	if err != nil {
		return err
	}
	if err := n.host.Check(ctx); err != nil {
		return err
	}
	ctx, cancel := n.host.WithTimeout(ctx)
	defer cancel()
	h := sha256.New()
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(io.MultiWriter(bw, h))
	err = enc.Encode(backupHeader{Format: backupFormat, Version: 1, Token: n.cfg.ClusterToken,
		Shards: len(n.shards), Member: n.cfg.Name, Created: time.Now().UTC()})
	for _, s := range n.shards {
		if err != nil {
			break
		}
		var v *sm.View
		if v, err = s.Read(ctx, o.serializable); err != nil {
			break
		}
		all := sm.Op{Kind: sm.OpRange, Key: "\x00", End: "\x00"}
		r, code := v.Range(&all)
		if err = codeErr(code); err != nil {
			break
		}
		if err = enc.Encode(backupShard{Shard: s.Index, Revision: v.Revision(), Keys: len(r.KVs)}); err != nil {
			break
		}
		for _, kv := range r.KVs {
			if err = enc.Encode(backupKey{Key: []byte(kv.Key), Value: kv.Value, Lease: kv.Lease}); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = json.NewEncoder(bw).Encode(backupTrailer{SHA256: hex.EncodeToString(h.Sum(nil))})
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
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
	if err := n.host.Check(ctx); err != nil {
		return nil, err
	}
	keys, err := readBackup(r)
	if err != nil {
		return nil, err
	}
	g, err := n.Get(ctx, "\x00", WithFromKey(), WithCountOnly())
	if err != nil {
		return nil, err
	}
	if g.Count > 0 {
		return nil, fmt.Errorf("%w: it holds %d keys; restore into a new cluster", ErrNotEmpty, g.Count)
	}
	res := &RestoreResult{}
	batches := map[int][]backupKey{}
	var order []int
	flush := func(shard int) error {
		b := batches[shard]
		if len(b) == 0 {
			return nil
		}
		ops := make([]Op, len(b))
		for i, k := range b {
			ops[i] = OpPut(string(k.Key), k.Value)
		}
		if _, err := n.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("coord: restore after %d keys: %w", res.Keys, err)
		}
		res.Keys += len(b)
		batches[shard] = b[:0]
		return nil
	}
	size := map[int]int{}
	for _, k := range keys {
		if k.Lease != 0 {
			res.SkippedLease++
			continue
		}
		if err := n.checkKey(string(k.Key)); err != nil {
			return nil, fmt.Errorf("%w: key %q: %w", ErrBadBackup, k.Key, err)
		}
		if err := n.checkValue(k.Value); err != nil {
			return nil, fmt.Errorf("%w: value of key %q: %w", ErrBadBackup, k.Key, err)
		}
		s := n.ShardOf(string(k.Key))
		sz := len(k.Key) + len(k.Value) + 16
		if len(batches[s]) >= n.cfg.MaxTxnOps || size[s]+sz > n.cfg.MaxRequestBytes/2 {
			if err := flush(s); err != nil {
				return res, err
			}
			size[s] = 0
		}
		if _, ok := batches[s]; !ok {
			order = append(order, s)
		}
		batches[s] = append(batches[s], k)
		size[s] += sz
	}
	for _, s := range order {
		if err := flush(s); err != nil {
			return res, err
		}
	}
	return res, nil
}

// readBackup reads and verifies a whole backup.
func readBackup(r io.Reader) ([]backupKey, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("coord: reading backup: %w", err)
	}
	body := bytes.TrimRight(data, "\n")
	cut := bytes.LastIndexByte(body, '\n')
	if cut < 0 {
		return nil, fmt.Errorf("%w: too short", ErrBadBackup)
	}
	var tr backupTrailer
	if err := json.Unmarshal(body[cut+1:], &tr); err != nil || tr.SHA256 == "" {
		return nil, fmt.Errorf("%w: no checksum line at the end (truncated?)", ErrBadBackup)
	}
	sum := sha256.Sum256(data[:cut+1])
	if hex.EncodeToString(sum[:]) != tr.SHA256 {
		return nil, fmt.Errorf("%w: checksum mismatch (corrupt or truncated)", ErrBadBackup)
	}
	dec := json.NewDecoder(bytes.NewReader(data[:cut+1]))
	dec.DisallowUnknownFields()
	var hdr backupHeader
	if err := dec.Decode(&hdr); err != nil || hdr.Format != backupFormat {
		return nil, fmt.Errorf("%w: not a coordkit backup", ErrBadBackup)
	}
	if hdr.Version != 1 {
		return nil, fmt.Errorf("%w: version %d, this build reads version 1", ErrBadBackup, hdr.Version)
	}
	var keys []backupKey
	for s := 0; s < hdr.Shards; s++ {
		var sh backupShard
		if err := dec.Decode(&sh); err != nil || sh.Shard != s {
			return nil, fmt.Errorf("%w: shard %d's line is missing or bad", ErrBadBackup, s)
		}
		for i := 0; i < sh.Keys; i++ {
			var k backupKey
			if err := dec.Decode(&k); err != nil {
				return nil, fmt.Errorf("%w: shard %d key %d: %v", ErrBadBackup, s, i, err)
			}
			keys = append(keys, k)
		}
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the last shard", ErrBadBackup)
	}
	return keys, nil
}
