package coordtest

import (
	"net"
	"testing"
	"time"

	"github.com/coordkit/coordkit/internal/freeport"
)

// New starts the cluster again on other ports when a member's port was
// taken between being chosen and being bound.
func TestNewRetriesWhenAPortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	calls := 0
	pickAddrs = func(n int) ([]string, error) {
		calls++
		a, err := freeport.Addrs(n)
		if err == nil && calls == 1 {
			a[n-1] = taken.Addr().String()
		}
		return a, err
	}
	defer func() { pickAddrs = freeport.Addrs }()
	c := New(t, 2)
	if calls != 2 {
		t.Fatalf("addresses picked %d times, want 2", calls)
	}
	for i := 0; i < c.Size(); i++ {
		if a := c.Config(i).RaftAddress; a == taken.Addr().String() {
			t.Fatalf("member %d kept the taken address %s", i, a)
		}
	}
	if _, err := c.Node(0).Put(Context(t, 30*time.Second), "/k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}
