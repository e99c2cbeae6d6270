package meta_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/internal/meta"
	"github.com/coordkit/coordkit/internal/freeport"
)

// A snapshot of several blocks (dragonboat's are 2 MiB each) passes the
// check whole, and fails it, naming the file and the block, with one bit
// flipped in its second block, or cut at the end of its first.
func TestCheckSnapshotOfSeveralBlocks(t *testing.T) {
	dir := t.TempDir()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	cfg := coord.Config{DataDir: dir, RaftAddress: addr, SnapshotEntries: 20, CompactionOverhead: 5}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := coord.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 1000)
	for i := range 60 { // 6 MB of values, in 60 entries
		ops := make([]coord.Op, 0, 100)
		for j := range 100 {
			ops = append(ops, coord.OpPut(fmt.Sprintf("/k/%05d", i*100+j), val))
		}
		if _, err := n.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	n.Close()
	raft := filepath.Join(dir, "raft")
	if err := meta.CheckRaftDir(vfs.Default, raft); err != nil {
		t.Fatalf("a sound DataDir: %v", err)
	}
	snap, good := readFileUnder(t, raft, ".gbsnap", 1024+snap2MiB+4+200, 1<<40)
	for _, tc := range []struct {
		name string
		bad  []byte
		want string
	}{
		{"a bit in the second block", func() []byte {
			b := append([]byte(nil), good...)
			b[1024+snap2MiB+4+100] ^= 1
			return b
		}(), fmt.Sprintf("block at byte %d", 1024+snap2MiB+4)},
		{"cut after the first block", good[:1024+snap2MiB+4], "snapshot"},
	} {
		if err := os.WriteFile(snap, tc.bad, 0o600); err != nil {
			t.Fatal(err)
		}
		err := meta.CheckRaftDir(vfs.Default, raft)
		if !errors.Is(err, coord.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(snap)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want coord.ErrCorrupt naming %s and %q", tc.name, err, filepath.Base(snap), tc.want)
		}
	}
}

const snap2MiB = 2 << 20

// A WAL shorter than one of pebble's 32 KiB blocks: a bit flipped in its
// first record, with whole records after it in the same block, is
// corruption (found by a CI run whose WAL was 20 KiB: only later blocks
// were searched); the same file cut inside its last record is a torn
// write, and passes.
func TestCheckWALWithinOneBlock(t *testing.T) {
	dir := t.TempDir()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := coord.Open(ctx, coord.Config{DataDir: dir, RaftAddress: addr})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if _, err := n.Put(ctx, fmt.Sprintf("/w/%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	n.Close()
	wal, good := readFileUnder(t, filepath.Join(dir, "raft"), ".log", 2000, 32<<10)
	flipped := append([]byte(nil), good...)
	flipped[100] ^= 0x08
	if err := os.WriteFile(wal, flipped, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := meta.CheckRaftDir(vfs.Default, filepath.Join(dir, "raft")); !errors.Is(err, coord.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(wal)) {
		t.Fatalf("a bit flipped in the first record of a %d-byte WAL: %v; want coord.ErrCorrupt naming it", len(good), err)
	}
	if err := os.WriteFile(wal, good[:len(good)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := meta.CheckRaftDir(vfs.Default, filepath.Join(dir, "raft")); err != nil {
		t.Fatalf("a WAL torn inside its last record: %v; want it to pass", err)
	}
}

// readFileUnder returns the path and content of the last file under dir
// whose name ends with suffix and whose size is above lo and below hi;
// it fails the test if there is none.
func readFileUnder(t *testing.T, dir, suffix string, lo, hi int64) (string, []byte) {
	t.Helper()
	var found string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, suffix) && info.Size() > lo && info.Size() < hi {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no *%s of %d to %d bytes under %s", suffix, lo, hi, dir)
	}
	b, err := os.ReadFile(found)
	if err != nil {
		t.Fatal(err)
	}
	return found, b
}
