// Package freeport picks loopback addresses for tests and examples that start
// members on this machine.
//
// Asking the kernel for port 0 and closing the listener, the usual trick,
// fails in two ways when many test processes run at once, as go test ./...
// does: the kernel may hand the same port out again before it is used, and
// the port lies in the ephemeral range, from which every outgoing connection
// of every process on the machine takes its local port. So Addrs picks
// ports at random below the ephemeral range, where the kernel never
// allocates on its own, checks each by binding it, holds them all until the
// whole set is chosen, and never hands the same port out twice in one
// process. A port may still be taken by another process between Addrs
// returning and its caller binding it; callers that must not fail then retry
// on an error matching syscall.EADDRINUSE.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Lowest port Addrs picks: below it live well-known services.
const floor = 10000

var (
	mu    sync.Mutex
	given = map[int]bool{} // ports this process was handed
	// portRange is where Addrs picks: [floor, the ephemeral range). A test
	// narrows it.
	portRange = func() (lo, hi int) { return floor, ephemeralLow() }
)

// Addrs returns n distinct loopback addresses, "127.0.0.1:PORT", each free
// when it was chosen and none returned before by this process. It is safe
// for concurrent use and does not block beyond the binds it tries. It fails
// only if the machine has no free port to give.
func Addrs(n int) ([]string, error) {
	mu.Lock()
	defer mu.Unlock()
	held := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	lo, hi := portRange()
	out := make([]string, 0, n)
	for tries := 0; len(out) < n; tries++ {
		addr := "127.0.0.1:0" // the kernel's pick, if there is no room below its range
		if hi-lo >= 1000 && tries < 100*n {
			port := lo + rand.IntN(hi-lo)
			if given[port] {
				continue
			}
			addr = "127.0.0.1:" + strconv.Itoa(port)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if addr == "127.0.0.1:0" {
				return nil, fmt.Errorf("freeport: %w", err)
			}
			continue // taken: try another
		}
		held = append(held, l)
		out = append(out, l.Addr().String())
		given[l.Addr().(*net.TCPAddr).Port] = true
	}
	return out, nil
}

// Addr returns one loopback address; see Addrs.
func Addr() (string, error) {
	a, err := Addrs(1)
	if err != nil {
		return "", err
	}
	return a[0], nil
}

// ephemeralLow returns the first port of the kernel's ephemeral range, or
// the common Linux default where the range cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 0 {
				return v
			}
		}
	}
	return 32768
}
