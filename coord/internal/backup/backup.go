// Package backup writes and reads coordkit's backup format, for package
// coord's Snapshot and Restore, and plans a restore's transactions.
//
// The format is JSON lines, so that it can be inspected with a text
// tool: a header, then per shard a shard line and its keys, then the
// SHA-256 of every byte before the last line. Keys and values are JSON
// byte strings (base64), so binary keys survive.
package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Format names the format in every backup's header.
const Format = "coordkit-backup"

// Header is a backup's first line.
type Header struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Token   string    `json:"cluster_token"`
	Shards  int       `json:"shards"`
	Member  string    `json:"member"`
	Created time.Time `json:"created"`
}

// shardLine opens a shard's part.
type shardLine struct {
	Shard    int   `json:"shard"`
	Revision int64 `json:"revision"`
	Keys     int   `json:"keys"`
}

// Key is one key of a backup.
type Key struct {
	Key   []byte `json:"k"`
	Value []byte `json:"v"`
	Lease int64  `json:"l,omitempty"`
}

// trailer is the last line.
type trailer struct {
	SHA256 string `json:"sha256"`
}

// Writer writes one backup.
type Writer struct {
	bw  *bufio.Writer
	h   hash.Hash
	enc *json.Encoder
	err error
}

// NewWriter starts a backup on w with its header (Format, Version and
// Created are filled in).
func NewWriter(w io.Writer, hdr Header) *Writer {
	bw := bufio.NewWriter(w)
	h := sha256.New()
	b := &Writer{bw: bw, h: h, enc: json.NewEncoder(io.MultiWriter(bw, h))}
	hdr.Format, hdr.Version, hdr.Created = Format, 1, time.Now().UTC()
	b.err = b.enc.Encode(hdr)
	return b
}

// Shard writes shard index's part: its keys, read at revision rev. Shards
// are written in order, every one the header counts.
func (b *Writer) Shard(index int, rev int64, kvs []*sm.KV) error {
	if b.err == nil {
		b.err = b.enc.Encode(shardLine{Shard: index, Revision: rev, Keys: len(kvs)})
	}
	for _, kv := range kvs {
		if b.err != nil {
			break
		}
		b.err = b.enc.Encode(Key{Key: []byte(kv.Key), Value: kv.Value, Lease: kv.Lease})
	}
	return b.err
}

// Close writes the checksum line and flushes. The backup is complete only
// when it returns nil; a partial one is refused by Read.
func (b *Writer) Close() error {
	if b.err == nil {
		b.err = json.NewEncoder(b.bw).Encode(trailer{SHA256: hex.EncodeToString(b.h.Sum(nil))})
	}
	if b.err == nil {
		b.err = b.bw.Flush()
	}
	return b.err
}

// Plan groups the keys to restore into transactions: each holds keys of
// one shard (shardOf), at most maxOps keys and about maxBytes of keys and
// values. Keys attached to a lease are left out and counted (skipped).
// Transactions come in the order the backup first reaches their shard.
func Plan(keys []Key, shardOf func(string) int, maxOps, maxBytes int) (txns [][]Key, skipped int) {
	open := map[int]int{} // shard -> index in txns of its open transaction
	size := map[int]int{}
	for _, k := range keys {
		if k.Lease != 0 {
			skipped++
			continue
		}
		s := shardOf(string(k.Key))
		sz := len(k.Key) + len(k.Value) + 16
		i, ok := open[s]
		if !ok || len(txns[i]) >= maxOps || size[s]+sz > maxBytes {
			txns = append(txns, nil)
			i, open[s], size[s] = len(txns)-1, len(txns)-1, 0
		}
		txns[i] = append(txns[i], k)
		size[s] += sz
	}
	return txns, skipped
}

// Read reads and verifies a whole backup, and returns its keys, in order.
// Errors: one wrapping ErrBadBackup naming what is wrong, or r's.
func Read(r io.Reader) ([]Key, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("coord: reading backup: %w", err)
	}
	body := bytes.TrimRight(data, "\n")
	cut := bytes.LastIndexByte(body, '\n')
	if cut < 0 {
		return nil, fmt.Errorf("%w: too short", errdefs.ErrBadBackup)
	}
	var tr trailer
	if err := json.Unmarshal(body[cut+1:], &tr); err != nil || tr.SHA256 == "" {
		return nil, fmt.Errorf("%w: no checksum line at the end (truncated?)", errdefs.ErrBadBackup)
	}
	sum := sha256.Sum256(data[:cut+1])
	if hex.EncodeToString(sum[:]) != tr.SHA256 {
		return nil, fmt.Errorf("%w: checksum mismatch (corrupt or truncated)", errdefs.ErrBadBackup)
	}
	dec := json.NewDecoder(bytes.NewReader(data[:cut+1]))
	dec.DisallowUnknownFields()
	var hdr Header
	if err := dec.Decode(&hdr); err != nil || hdr.Format != Format {
		return nil, fmt.Errorf("%w: not a coordkit backup", errdefs.ErrBadBackup)
	}
	if hdr.Version != 1 {
		return nil, fmt.Errorf("%w: version %d, this build reads version 1", errdefs.ErrBadBackup, hdr.Version)
	}
	var keys []Key
	for s := 0; s < hdr.Shards; s++ {
		var sh shardLine
		if err := dec.Decode(&sh); err != nil || sh.Shard != s {
			return nil, fmt.Errorf("%w: shard %d's line is missing or bad", errdefs.ErrBadBackup, s)
		}
		for i := 0; i < sh.Keys; i++ {
			var k Key
			if err := dec.Decode(&k); err != nil {
				return nil, fmt.Errorf("%w: shard %d key %d: %v", errdefs.ErrBadBackup, s, i, err)
			}
			keys = append(keys, k)
		}
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the last shard", errdefs.ErrBadBackup)
	}
	return keys, nil
}
