package coord_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

// A member whose disk fails a sync (EIO) or a write (ENOSPC) while it
// takes writes stops itself with ErrDiskFailure naming the file, and the
// process goes on (this test runs in it); the other members keep taking
// writes. Reopened from what its disk had synced, on a mended disk, the
// member serves again, and every put acknowledged, before the failure and
// after it, through any member, is read back through it: nothing it could
// not keep was acknowledged. With the failed call returned to dragonboat
// instead of blocked (diskFS.check), the test fails: the member never
// stops, and dragonboat's panic on the error ends the process.
//
// It runs in a child process: the stopped member's storage stays open in
// it, blocked in the failed call, which the leak check would report.
func TestDiskFailureStopsTheMemberNotTheProcess(t *testing.T) {
	if !inChild(t) {
		return
	}
	c := coordtest.New(t, 3, coordtest.WithDiskFaults())
	log := &ackLog{at: map[string]time.Time{}, val: map[string]string{}, round: 1}
	for _, tc := range []struct {
		name   string
		leader bool
		op     coordtest.DiskOp
		errno  syscall.Errno
	}{
		{"follower-sync-eio", false, coordtest.DiskSync, syscall.EIO},
		{"leader-write-enospc", true, coordtest.DiskWrite, syscall.ENOSPC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := c.WaitLeader(0)
			if !tc.leader {
				i = (i + 1) % c.Size()
			}
			stop := log.writers(c)
			coordtest.Eventually(t, 10*time.Second, func() bool { return log.count() >= 50 }, "writes acknowledged")
			n := c.Node(i)
			c.FailDisk(i, tc.op, tc.errno)
			coordtest.Eventually(t, 10*time.Second, func() bool { return n.Err() != nil }, "member %d stops itself", i)
			err := n.Err()
			raftDir := filepath.Join(c.Config(i).DataDir, "raft")
			if !errors.Is(err, coord.ErrDiskFailure) || !strings.Contains(err.Error(), tc.errno.Error()) || !strings.Contains(err.Error(), raftDir) {
				t.Fatalf("Err() = %v, want ErrDiskFailure naming %q and a file under %s", err, tc.errno.Error(), raftDir)
			}
			select {
			case <-n.Done():
			default:
				t.Fatal("Done not closed after the member stopped itself")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := n.Get(ctx, "/pl/", coord.WithPrefix(), coord.WithSerializable()); !errors.Is(err, coord.ErrClosed) || !errors.Is(err, coord.ErrDiskFailure) {
				t.Fatalf("Get on the stopped member: %v, want ErrClosed wrapping ErrDiskFailure", err)
			}
			before := log.count()
			other := c.Node((i + 1) % c.Size())
			if _, err := other.Put(ctx, "/after-failure/"+tc.name, []byte("x")); err != nil {
				t.Fatalf("put through member %d after member %d's disk failed: %v", (i+1)%c.Size(), i, err)
			}
			coordtest.Eventually(t, 10*time.Second, func() bool { return log.count() >= before+50 }, "writes acknowledged after the failure")
			stop()

			n, err = c.ReopenMendedDisk(i)
			if err != nil {
				t.Fatalf("reopening member %d on a mended disk: %v", i, err)
			}
			c.WaitReady()
			lost, checked := log.lostBefore(t, n, time.Now())
			if len(lost) > 0 {
				t.Fatalf("%d of %d acknowledged puts lost, e.g. %v", len(lost), checked, lost[0])
			}
			t.Logf("member %d (leader: %v): %d acknowledged puts read back through it; %d acknowledged after its failure", i, tc.leader, checked, log.count()-before)
		})
	}
}
