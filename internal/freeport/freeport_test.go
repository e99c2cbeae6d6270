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
	// Hold open every address of one call: a second call must avoid them.
	first, err := Addrs(100)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range first {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
	}
	second, err := Addrs(100)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, a := range first {
		held[a] = true
	}
	for _, a := range second {
		if held[a] {
			t.Fatalf("address %s is held open but was returned", a)
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
