package members

import (
	"errors"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
)

// A change keeps quorum only if the voters it leaves, reachable now, are a
// majority of them; no voter at all is never a quorum.
func TestQuorumAfter(t *testing.T) {
	set := func(ids ...uint64) map[uint64]bool {
		m := map[uint64]bool{}
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	for _, tc := range []struct {
		name         string
		after, reach map[uint64]bool
		ok           bool
	}{
		{"3 of 3", set(1, 2, 3), set(1, 2, 3), true},
		{"2 of 3", set(1, 2, 3), set(1, 2), true},
		{"1 of 3", set(1, 2, 3), set(1), false},
		{"adding a 4th to 3 with one down", set(1, 2, 3, 4), set(1, 2, 4), true},
		{"adding a 4th, unreachable, with one down", set(1, 2, 3, 4), set(1, 2), false},
		{"observers do not count", set(1), set(2, 3), false},
		{"none left", set(), set(1), false},
	} {
		err := quorumAfter(tc.after, tc.reach)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, errdefs.ErrQuorum) {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// The set of voters and of reachable members, and a member by name.
func TestVoterSetAndFindMember(t *testing.T) {
	ms := []Member{{Name: "a", ID: 1, Voter: true, Reachable: true}, {Name: "b", ID: 2, Voter: true},
		{Name: "o", ID: 9, Reachable: true}}
	voters, reach := voterSet(ms)
	if len(voters) != 2 || !voters[1] || !voters[2] || len(reach) != 2 || !reach[1] || !reach[9] {
		t.Fatalf("voters %v reachable %v", voters, reach)
	}
	if m, err := findMember(ms, "o"); err != nil || m.ID != 9 {
		t.Fatalf("findMember(o) = %+v, %v", m, err)
	}
	if _, err := findMember(ms, "z"); !errors.Is(err, errdefs.ErrMemberNotFound) {
		t.Fatalf("findMember(z): %v, want ErrMemberNotFound", err)
	}
}

// Addresses are host:port with a port in range; loopback means a loopback
// IP or localhost.
func TestAddresses(t *testing.T) {
	for a, ok := range map[string]bool{"127.0.0.1:2380": true, "[::1]:1": true, "example.com:65535": true,
		"nope": false, ":2380": false, "h:0": false, "h:65536": false, "h:x": false} {
		if err := ValidAddress(a); (err == nil) != ok {
			t.Errorf("ValidAddress(%q) = %v, want ok=%v", a, err, ok)
		}
	}
	for a, want := range map[string]bool{"127.0.0.1:1": true, "127.9.9.9:1": true, "[::1]:1": true, "localhost:1": true,
		"10.0.0.1:1": false, "example.com:1": false, "bad": false} {
		if got := Loopback(a); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", a, got, want)
		}
	}
}
