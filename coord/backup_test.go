package coord_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

func TestSnapshotBackupRestoresIntoANewCluster(t *testing.T) {
	src := coordtest.New(t, 3, coordtest.WithShards(2))
	ctx := ctxT(t)
	want := map[string]string{}
	for i := 0; i < 300; i++ {
		k := fmt.Sprintf("/dir%d/k%03d", i%5, i)
		want[k] = fmt.Sprint(i)
		mustPut(t, src.Node(i%3), k, want[k])
	}
	bin := "/bin/\x00\xff key"
	want[bin] = "\x00value\xfe"
	mustPut(t, src.Node(0), bin, want[bin])
	mustPut(t, src.Node(0), "/dir1/k000", "overwritten") // the latest version is what counts
	want["/dir1/k000"] = "overwritten"
	mustPut(t, src.Node(0), "/dir0/k005", "x")
	mustPut(t, src.Node(0), "/dir0/k005", "deleted")
	if _, err := src.Node(0).Delete(ctx, "/dir0/k005"); err != nil {
		t.Fatal(err)
	}
	delete(want, "/dir0/k005")
	l, err := src.Node(1).Grant(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, src.Node(1), "/sessions/owner", "gone with the old cluster", coord.WithLease(l.ID))

	var backup bytes.Buffer
	if err := src.Node(2).Snapshot(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	data := backup.Bytes()

	dst := coordtest.New(t, 3)
	// Damaged backups are refused before anything is written.
	for name, bad := range map[string][]byte{
		"truncated": data[:len(data)/2],
		"flipped":   append(append([]byte{}, data[:100]...), append([]byte{data[100] ^ 1}, data[101:]...)...),
		"empty":     nil,
		"not ours":  []byte("{\"hello\":1}\n{\"sha256\":\"00\"}\n"),
	} {
		if _, err := dst.Node(0).Restore(ctx, bytes.NewReader(bad)); !errors.Is(err, coord.ErrBadBackup) {
			t.Fatalf("%s backup: %v, want ErrBadBackup", name, err)
		}
	}
	if g, _ := dst.Node(0).Get(ctx, "\x00", coord.WithFromKey(), coord.WithCountOnly()); g.Count != 0 {
		t.Fatalf("a refused backup wrote %d keys", g.Count)
	}
	res, err := dst.Node(1).Restore(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if res.Keys != len(want) || res.SkippedLease != 1 {
		t.Fatalf("restore: %+v, want %d keys and 1 skipped", res, len(want))
	}
	g, err := dst.Node(2).Get(ctx, "\x00", coord.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	if len(g.KVs) != len(want) {
		t.Fatalf("restored cluster holds %d keys, want %d", len(g.KVs), len(want))
	}
	for _, kv := range g.KVs {
		if want[kv.Key] != string(kv.Value) {
			t.Fatalf("restored %q = %q, want %q", kv.Key, kv.Value, want[kv.Key])
		}
	}
	if _, err := dst.Node(0).Restore(ctx, bytes.NewReader(data)); !errors.Is(err, coord.ErrNotEmpty) {
		t.Fatalf("restoring into a cluster with keys: %v, want ErrNotEmpty", err)
	}
	if err := dst.Node(0).Snapshot(ctx, &backup, coord.WithPrefix()); !errors.Is(err, coord.ErrInvalidOption) {
		t.Fatalf("Snapshot with WithPrefix: %v, want ErrInvalidOption", err)
	}
}

// With a majority of voters gone for good, a survivor's replica is saved
// with a serializable Snapshot and restored into a new cluster.
func TestSerializableSnapshotSavesASurvivorWithoutQuorum(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	for i := 0; i < 50; i++ {
		mustPut(t, c.Node(i%3), fmt.Sprintf("/survivor/k%d", i), "v")
	}
	coordtest.Eventually(t, 10*time.Second, func() bool { return serializableCount(c.Node(2), "/survivor/") == 50 },
		"member 2 did not apply every write")
	c.Stop(0)
	c.Stop(1)
	lin, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var b bytes.Buffer
	if err := c.Node(2).Snapshot(lin, &b); err == nil {
		t.Fatal("a linearizable snapshot succeeded without quorum")
	}
	b.Reset()
	if err := c.Node(2).Snapshot(ctx, &b, coord.WithSerializable()); err != nil {
		t.Fatal(err)
	}
	fresh := coordtest.New(t, 1)
	res, err := fresh.Node(0).Restore(ctx, &b)
	if err != nil || res.Keys != 50 {
		t.Fatalf("restore of the survivor's backup: %+v, %v", res, err)
	}
}
