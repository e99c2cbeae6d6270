package coord_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/record"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

// newestFile returns the path of the last file under dir, in name order,
// whose name ends with suffix.
func newestFile(t *testing.T, dir, suffix string) string {
	t.Helper()
	var found []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(p, suffix) {
			found = append(found, p)
		}
		return err
	})
	if err != nil || len(found) == 0 {
		t.Fatalf("no file *%s under %s: %v", suffix, dir, err)
	}
	sort.Strings(found)
	return found[len(found)-1]
}

// cutWAL returns a cut of a pebble WAL at the start of the record num/den
// of the way through its records: a log that reads as whole, and shorter.
func cutWAL(num, den int) func(t *testing.T, path string, b []byte) []byte {
	return func(t *testing.T, path string, b []byte) []byte {
		offs := walRecordOffsets(t, path, b)
		return b[:offs[len(offs)*num/den]]
	}
}

// emptyWALsAfterFullest finds the pebble WAL under dir with the most
// records, empties every WAL numbered after it, and returns its path.
func emptyWALsAfterFullest(t *testing.T, dir string) string {
	t.Helper()
	var wals []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(p, ".log") {
			wals = append(wals, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(wals)
	best, most := -1, 0
	for i, p := range wals {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(walRecords(t, p, b)); n > most {
			best, most = i, n
		}
	}
	if best < 0 {
		t.Fatalf("no WAL with records under %s", dir)
	}
	for _, p := range wals[best+1:] {
		if err := os.Truncate(p, 0); err != nil {
			t.Fatal(err)
		}
	}
	return wals[best]
}

// walRecordOffsets returns where each record of a pebble WAL starts; it
// fails the test for a WAL of fewer than 8 records.
func walRecordOffsets(t *testing.T, path string, b []byte) []int64 {
	offs := walRecords(t, path, b)
	if len(offs) < 8 {
		t.Fatalf("%s holds %d records", path, len(offs))
	}
	return offs
}

// walRecords returns where each whole record of a pebble WAL starts.
func walRecords(t *testing.T, path string, b []byte) []int64 {
	num, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(path), ".log"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	r := record.NewReader(bytes.NewReader(b), pebble.FileNum(num))
	var offs []int64
	for {
		off := r.Offset()
		rec, err := r.Next()
		if err == nil {
			_, err = io.Copy(io.Discard, rec)
		}
		if err != nil {
			break
		}
		offs = append(offs, off)
	}
	return offs
}

// A follower of three has a file of its DataDir corrupted while it is down
// and the others take writes: a bit flipped or the file cut short, in its
// Raft log (a pebble WAL) or its latest snapshot. The member must not come
// back with that state: either Open refuses, with ErrCorrupt naming the
// file, or (a log cut at a record's boundary, which reads as a shorter log)
// the member stops itself at its leader's first heartbeat, with Err and its
// calls saying why (or Open saying why, if that heartbeat comes first). Then it is rebuilt from its peers as a new member, and
// every write acknowledged to the writers, before, during and after, is
// there: no committed write is lost.
func TestCorruptMemberIsStoppedAndRebuiltWithoutLosingWrites(t *testing.T) {
	for _, tc := range []struct {
		name      string
		suffix    string // of the file corrupted: the newest one
		snapEvery uint64
		corrupt   func(t *testing.T, path string, b []byte) []byte
		openFails bool // else the member stops itself after Open
		either    bool // either outcome
		// tail: the corrupted file is the WAL holding the most records,
		// and every newer WAL is emptied: the log loses its whole tail.
		tail bool
	}{
		// A bit in the WAL's first block: whole records follow it.
		{"wal-bit-flipped", ".log", 0, func(_ *testing.T, _ string, b []byte) []byte { b[100] ^= 0x08; return b }, true, false, false},
		{"snapshot-bit-flipped", ".gbsnap", 200, func(_ *testing.T, _ string, b []byte) []byte { b[len(b)/2] ^= 0x08; return b }, true, false, false},
		// At the boundary of a record a quarter of the records from the
		// end: the newest entries, those the leader counts the member as
		// holding. Without snapshots, whose records the cut could take.
		// (The first heartbeat may come while Open still runs: Open then
		// returns the error.)
		{"wal-truncated", ".log", 0, cutWAL(3, 4), false, true, false},
		{"snapshot-truncated", ".gbsnap", 200, func(_ *testing.T, _ string, b []byte) []byte { return b[:len(b)/2] }, true, false, false},
		// With a snapshot every 50 entries, a cut this early takes the
		// records of the newest snapshots, whose predecessors are removed:
		// the log refers to a snapshot that is gone (dragonboat panicked,
		// "recover failed"), or it is just shorter.
		{"wal-truncated-before-snapshots", ".log", 50, cutWAL(1, 10), false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := coordtest.New(t, 3, coordtest.WithConfig(func(cfg *coord.Config) {
				if tc.snapEvery > 0 {
					cfg.SnapshotEntries, cfg.CompactionOverhead = tc.snapEvery, tc.snapEvery/4
				}
			}))
			log := &ackLog{at: map[string]time.Time{}, val: map[string]string{}, round: 1}
			stop := log.writers(c)
			// A follower: its leader, which stays, counts what it acknowledged
			// (a new leader would count nothing, and would just repair a
			// shorter log).
			v := (c.WaitLeader(0) + 1) % 3
			time.Sleep(time.Second)
			c.Stop(v)
			path := newestFile(t, filepath.Join(c.Config(v).DataDir, "raft"), tc.suffix)
			if tc.tail {
				path = emptyWALsAfterFullest(t, filepath.Join(c.Config(v).DataDir, "raft"))
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			size := len(b)
			bad := tc.corrupt(t, path, b)
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // the others take writes

			n, err := coord.Open(coordtest.Context(t, 30*time.Second), c.Config(v))
			if tc.either && err != nil {
				if !errors.Is(err, coord.ErrCorrupt) {
					t.Fatalf("Open after %s: %v; want ErrCorrupt", tc.name, err)
				}
				t.Logf("Open refused: %v", err)
			} else if tc.openFails {
				if n != nil {
					n.Close()
				}
				if !errors.Is(err, coord.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(path)) {
					t.Fatalf("Open after %s of %d bytes: %v; want ErrCorrupt naming %s", tc.name, size, err, path)
				}
				t.Logf("Open refused: %v", err)
			} else {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer n.Close()
				wait := 20 * time.Second
				if tc.tail {
					wait = 3 * time.Second
				}
				deadline := time.Now().Add(wait)
				for n.Err() == nil && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if tc.tail && n.Err() == nil {
					// The emptied WALs held only entries pebble had also
					// flushed to sstables: the leader's heartbeats found the
					// log as long as it counts it. Every write is checked
					// below all the same.
					t.Logf("the cut took nothing the member had acknowledged: it runs")
				} else if !errors.Is(n.Err(), coord.ErrCorrupt) {
					t.Fatalf("the member with a log cut from %d to %d bytes did not stop: Err() = %v", size, len(bad), n.Err())
				}
				if n.Err() != nil {
					_, gerr := n.Get(coordtest.Context(t, 5*time.Second), "/pl/", coord.WithPrefix(), coord.WithSerializable())
					if !errors.Is(gerr, coord.ErrClosed) || !errors.Is(gerr, coord.ErrCorrupt) {
						t.Fatalf("a read on the stopped member: %v; want ErrClosed and ErrCorrupt", gerr)
					}
					t.Logf("the member stopped itself: %v", n.Err())
				}
			}

			// Rebuild: remove the member, add a new one with an empty
			// DataDir, which catches up from the others.
			if err := c.Node((v+1)%3).RemoveMember(coordtest.Context(t, 30*time.Second), c.Config(v).Name); err != nil {
				t.Fatalf("RemoveMember: %v", err)
			}
			joined := c.Join()
			time.Sleep(500 * time.Millisecond) // writes through the new member too
			stop()
			for _, i := range []int{(v + 1) % 3, joined} {
				lost, checked := log.lostBefore(t, c.Node(i), time.Now())
				if checked == 0 {
					t.Fatal("no write was acknowledged")
				}
				if len(lost) > 0 {
					t.Fatalf("through member %d: %d of %d acknowledged writes are gone, e.g. %s", i, len(lost), checked, lost[0])
				}
				t.Logf("through member %d: all %d acknowledged writes are there", i, checked)
			}
		})
	}
}

// A member whose DataDir was emptied, and which starts again under its old
// name and address (so with its old Raft ID), has forgotten everything it
// acknowledged: it stops with ErrCorrupt at its leader's first heartbeat,
// where dragonboat panicked the process before (invalid commitTo).
func TestEmptiedDataDirUnderTheOldIDIsRefused(t *testing.T) {
	c := coordtest.New(t, 3)
	v := (c.WaitLeader(0) + 1) % 3
	ctx := coordtest.Context(t, 30*time.Second)
	for i := range 50 {
		if _, err := c.Node((v+1)%3).Put(ctx, "/e/"+strconv.Itoa(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	c.Stop(v)
	if err := os.RemoveAll(c.Config(v).DataDir); err != nil {
		t.Fatal(err)
	}
	n, err := coord.Open(ctx, c.Config(v))
	if err == nil {
		defer n.Close()
		deadline := time.Now().Add(20 * time.Second)
		for n.Err() == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		err = n.Err()
	}
	if !errors.Is(err, coord.ErrCorrupt) {
		t.Fatalf("a member with an emptied DataDir under its old ID: %v; want ErrCorrupt", err)
	}
	t.Logf("refused: %v", err)
	if _, err := c.Node((v+1)%3).Put(ctx, "/e/after", []byte("v")); err != nil {
		t.Fatalf("the others stopped taking writes: %v", err)
	}
}
