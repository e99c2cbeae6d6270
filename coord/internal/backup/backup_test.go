package backup

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// A backup written whole reads back key for key; cut short or altered, it
// is refused with ErrBadBackup.
func TestWriteRead(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, Header{Token: "t", Shards: 2, Member: "m"})
	if err := w.Shard(0, 7, []*sm.KV{{Key: "/a", Value: []byte("1")}, {Key: "/b", Value: []byte{0, 255}, Lease: 9}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Shard(1, 3, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	keys, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != fmt.Sprint([]Key{{Key: []byte("/a"), Value: []byte("1")}, {Key: []byte("/b"), Value: []byte{0, 255}, Lease: 9}}) {
		t.Fatalf("read back %v", keys)
	}
	b := buf.Bytes()
	for name, bad := range map[string][]byte{
		"cut":     b[:len(b)/2],
		"altered": append(append([]byte{}, b[:10]...), append([]byte{'X'}, b[11:]...)...),
		"empty":   nil,
	} {
		if _, err := Read(bytes.NewReader(bad)); !errors.Is(err, errdefs.ErrBadBackup) {
			t.Errorf("%s backup: %v, want ErrBadBackup", name, err)
		}
	}
}

// Plan keeps each transaction to one shard and within its limits, leaves
// out keys with a lease, and keeps every other key exactly once.
func TestPlan(t *testing.T) {
	var keys []Key
	for i := range 25 {
		keys = append(keys, Key{Key: []byte(fmt.Sprintf("/%c/%02d", 'a'+i%2, i)), Value: make([]byte, 10)})
	}
	keys = append(keys, Key{Key: []byte("/a/leased"), Lease: 5})
	shardOf := func(k string) int { return int(k[1] - 'a') }
	txns, skipped := Plan(keys, shardOf, 4, 1000)
	if skipped != 1 {
		t.Fatalf("skipped %d, want 1", skipped)
	}
	seen := map[string]bool{}
	for _, txn := range txns {
		if len(txn) == 0 || len(txn) > 4 {
			t.Fatalf("a transaction of %d keys", len(txn))
		}
		for _, k := range txn {
			if shardOf(string(k.Key)) != shardOf(string(txn[0].Key)) {
				t.Fatalf("a transaction spans shards: %v", txn)
			}
			if seen[string(k.Key)] || k.Lease != 0 {
				t.Fatalf("key %s planned twice, or with its lease", k.Key)
			}
			seen[string(k.Key)] = true
		}
	}
	if len(seen) != 25 {
		t.Fatalf("%d keys planned, want 25", len(seen))
	}
	if txns, _ := Plan(keys[:10], shardOf, 100, 3*(5+10+16)); len(txns) != 4 { // keys of 5 bytes
		t.Fatalf("a byte limit of 3 keys over 10 keys in 2 shards: %d transactions, want 4", len(txns))
	}
}
