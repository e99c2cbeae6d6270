package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestAddrsDistinctFreeAndBelowEphemeralRange(t *testing.T) {
	const n = 200
	addrs, err := Addrs(n)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != n {
		t.Fatalf("got %d addresses, want %d", len(addrs), n)
	}
	low := ephemeralLow()
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("address %s returned twice", a)
		}
		seen[a] = true
		host, p, err := net.SplitHostPort(a)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("address %q is not a loopback host:port", a)
		}
		port, _ := strconv.Atoi(p)
		if low-floor >= 1000 && (port < floor || port >= low) {
			t.Fatalf("port %d outside [%d, %d)", port, floor, low)
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("returned address %s cannot be bound: %v", a, err)
		}
		l.Close()
	}
}

func TestAddrsSkipsPortsInUse(t *testing.T) {
	// Narrow the range to 1,000 ports and bind nine in ten of them
	// ourselves: Addrs must find the free ones by trying to bind.
	const lo, hi = 21000, 22000
	defer func(f func() (int, int)) { portRange = f }(portRange)
	portRange = func() (int, int) { return lo, hi }
	free := map[string]bool{}
	for p := lo; p < hi; p++ {
		a := "127.0.0.1:" + strconv.Itoa(p)
		if p%10 == 7 {
			free[a] = true
			continue
		}
		if l, err := net.Listen("tcp", a); err == nil {
			defer l.Close()
		}
	}
	got, err := Addrs(3)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range got {
		if !free[a] {
			t.Fatalf("returned %s, which is held open (the free ones end in 7)", a)
		}
	}
}

func TestAddrNeverRepeatsInAProcess(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 300; i++ {
		a, err := Addr() // each closed again before the next call
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] {
			t.Fatalf("call %d returned %s again", i, a)
		}
		seen[a] = true
	}
}
