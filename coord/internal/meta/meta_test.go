package meta

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
)

// FuzzLoadMeta: the member file in DataDir is input from disk; whatever it
// holds, loading it returns an error or a usable identity, never a panic.
func FuzzLoadMeta(f *testing.F) {
	f.Add([]byte(`{"version":1,"name":"a","replica_id":1,"cluster_token":"t","shards":1,"raft_address":"127.0.0.1:1","members":{"a":{"replica_id":1,"address":"127.0.0.1:1"}}}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := Load(vfs.Default, dir)
		if err != nil {
			return
		}
		if m == nil || (m.Version != 1 && m.Version != Version) || m.ReplicaID == 0 || m.Shards <= 0 {
			t.Fatalf("accepted an unusable member file: %+v", m)
		}
	})
}

func TestSaveLoadMetaRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := &Member{Version: 1, Name: "a", ReplicaID: 7, ClusterToken: "t", Shards: 3, RaftAddress: "127.0.0.1:9",
		Members: map[string]Peer{"a": {ReplicaID: 7, Address: "127.0.0.1:9"}}}
	if err := Save(vfs.Default, dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != want.Name || got.ReplicaID != want.ReplicaID || got.Shards != want.Shards || got.Members["a"] != want.Members["a"] {
		t.Fatalf("round trip: %+v, want %+v", got, want)
	}
	if m, err := Load(vfs.Default, t.TempDir()); m != nil || err != nil {
		t.Fatalf("missing file: %v %v, want nil nil", m, err)
	}
}

// The member file holds a checksum: a bit flipped anywhere in it, even in a
// digit of a replica ID, where the JSON stays valid, makes loading it fail
// with errdefs.ErrCorrupt naming the file, unless the content is unchanged (Go's
// JSON decoder reads a key's letters in either case). A version 1 file,
// which has no checksum, still loads.
func TestEveryBitFlipOfTheMemberFileIsCaught(t *testing.T) {
	dir := t.TempDir()
	m := &Member{Name: "a", ReplicaID: 7, ClusterToken: "t", Shards: 3, RaftAddress: "127.0.0.1:9",
		Members: map[string]Peer{"a": {ReplicaID: 7, Address: "127.0.0.1:9"}, "b": {ReplicaID: 12, Address: "127.0.0.1:10"}}}
	if err := Save(vfs.Default, dir, m); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Load(vfs.Default, dir)
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for i := range len(good) * 8 {
		b := append([]byte(nil), good...)
		b[i/8] ^= 1 << (i % 8)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Load(vfs.Default, dir)
		if err == nil && reflect.DeepEqual(got, want) {
			same++
			continue
		}
		if !errors.Is(err, errdefs.ErrCorrupt) || !strings.Contains(err.Error(), path) {
			t.Fatalf("bit %d of byte %d (%q) flipped: loaded %+v, error %v; want errdefs.ErrCorrupt naming the file", i%8, i/8, good[i/8], got, err)
		}
	}
	if same > len(good) {
		t.Fatalf("%d of %d flips left the content unchanged: a key's case, at most one a key letter", same, len(good)*8)
	}
	legacy := []byte(`{"version":1,"name":"a","replica_id":7,"cluster_token":"t","shards":3,"raft_address":"127.0.0.1:9","members":{"a":{"replica_id":7,"address":"127.0.0.1:9"}}}`)
	if err := os.WriteFile(path, legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(vfs.Default, dir); err != nil || got.ReplicaID != 7 {
		t.Fatalf("version 1 file: %+v, %v", got, err)
	}
}

// A DataDir created by Open survives a power loss right after: every
// directory made is synced into its parent (found by the power-loss test,
// where a member that lost power early came back with no DataDir at all).
func TestDataDirCreationIsDurable(t *testing.T) {
	fs := vfs.NewStrictMem()
	if err := fs.MkdirAll("/var", 0o755); err != nil {
		t.Fatal(err)
	}
	if d, err := fs.OpenDir("/"); err != nil {
		t.Fatal(err)
	} else if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAllSynced(fs, "/var/lib/coord/a", 0o750); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAllSynced(fs, "/var/lib/coord/a", 0o750); err != nil { // exists: nothing to do
		t.Fatal(err)
	}
	fs.ResetToSyncedState()
	if _, err := fs.Stat("/var/lib/coord/a"); err != nil {
		t.Fatalf("after a power loss: %v", err)
	}
}
