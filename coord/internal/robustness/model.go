// Package robustness drives random traffic against coordkit clusters while
// injecting faults, and checks what clients observed: linearizability of the
// key-value history (with porcupine), watch guarantees, durability of
// acknowledged writes, and that every replica ends in the same state.
// See README.md.
package robustness

import (
	"fmt"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// opKind is what a client did.
type opKind int

const (
	opPut opKind = iota
	opGet
	opDelete
	opCAS    // If ModRevision(key) == rev Then Put(key, value)
	opRevoke // revoke the lease bound to key
)

func (k opKind) String() string {
	return [...]string{"put", "get", "delete", "cas", "revoke"}[k]
}

// input is one request. Every lease is bound to one key (the one it was
// granted for), so the history partitions by key.
type input struct {
	Kind  opKind
	Key   string
	Value string
	Lease int64
	Rev   int64 // CAS: the expected ModRevision
}

// output is what the client saw.
type output struct {
	Unknown       bool // the write may or may not have been applied
	LeaseNotFound bool
	Rev           int64 // header revision
	Found         bool  // get
	Value         string
	ModRev        int64
	Deleted       int64 // delete
	Succeeded     bool  // cas
}

// keyState is the model's state of one key.
type keyState struct {
	Exists  bool
	Value   string
	ModRev  int64 // 0 when unknown (written by a request of unknown outcome)
	Lease   int64
	Revoked string // revoked leases bound to this key, sorted, comma-separated
}

func (s keyState) revoked(l int64) bool {
	if l == 0 || s.Revoked == "" {
		return false
	}
	for _, r := range strings.Split(s.Revoked, ",") {
		if r == fmt.Sprint(l) {
			return true
		}
	}
	return false
}

func (s keyState) withRevoked(l int64) keyState {
	if s.revoked(l) {
		return s
	}
	ids := []string{fmt.Sprint(l)}
	if s.Revoked != "" {
		ids = append(ids, strings.Split(s.Revoked, ",")...)
	}
	sort.Strings(ids)
	s.Revoked = strings.Join(ids, ",")
	return s
}

// apply returns the state after in took effect, or ok=false when in could
// not have succeeded from s (a put with a revoked lease).
func apply(s keyState, in input, out output) (keyState, bool) {
	switch in.Kind {
	case opPut:
		if s.revoked(in.Lease) {
			return s, false
		}
		rev := out.Rev
		if out.Unknown {
			rev = 0
		}
		return keyState{Exists: true, Value: in.Value, ModRev: rev, Lease: in.Lease, Revoked: s.Revoked}, true
	case opDelete:
		return keyState{Revoked: s.Revoked}, true
	case opCAS:
		rev := out.Rev
		if out.Unknown {
			rev = 0
		}
		return keyState{Exists: true, Value: in.Value, ModRev: rev, Revoked: s.Revoked}, true
	case opRevoke:
		if s.Exists && s.Lease == in.Lease {
			return keyState{Revoked: s.Revoked}.withRevoked(in.Lease), true
		}
		return s.withRevoked(in.Lease), true
	}
	return s, false
}

// step is the model: the states a key can be in after in returned out.
func step(st interface{}, inI interface{}, outI interface{}) []interface{} {
	s := st.(keyState)
	in := inI.(input)
	out := outI.(output)
	one := func(n keyState) []interface{} { return []interface{}{n} }
	if out.Unknown { // applied or not
		states := []interface{}{s}
		if in.Kind == opCAS && s.Exists && s.ModRev != 0 && s.ModRev != in.Rev {
			return states // the compare cannot have held
		}
		if in.Kind == opCAS && !s.Exists {
			return states
		}
		if n, ok := apply(s, in, out); ok {
			states = append(states, n)
		}
		return states
	}
	switch in.Kind {
	case opGet:
		if out.Found != s.Exists {
			return nil
		}
		if !s.Exists {
			return one(s)
		}
		if out.Value != s.Value || (s.ModRev != 0 && s.ModRev != out.ModRev) {
			return nil
		}
		s.ModRev = out.ModRev // learnt: the write of unknown outcome got this revision
		return one(s)
	case opPut:
		if out.LeaseNotFound {
			if s.revoked(in.Lease) {
				return one(s)
			}
			return nil
		}
		if n, ok := apply(s, in, out); ok {
			return one(n)
		}
		return nil
	case opDelete:
		if (out.Deleted == 1) != s.Exists {
			return nil
		}
		n, _ := apply(s, in, out)
		return one(n)
	case opCAS:
		holds := s.Exists && (s.ModRev == 0 || s.ModRev == in.Rev)
		if out.Succeeded {
			if !holds {
				return nil
			}
			n, _ := apply(s, in, out)
			return one(n)
		}
		if s.Exists && s.ModRev == in.Rev {
			return nil // the compare held but the swap did not happen
		}
		return one(s)
	case opRevoke:
		if out.LeaseNotFound {
			if s.revoked(in.Lease) {
				return one(s)
			}
			return nil
		}
		if s.revoked(in.Lease) {
			return nil // revoked twice, successfully
		}
		n, _ := apply(s, in, out)
		return one(n)
	}
	return nil
}

// kvModel is the porcupine model of one key's history.
func kvModel() porcupine.Model {
	m := kvNondeterministic()
	return m.ToModel()
}

// kvNondeterministic is kvModel before porcupine's power-set construction.
func kvNondeterministic() porcupine.NondeterministicModel {
	return porcupine.NondeterministicModel{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range history {
				k := op.Input.(input).Key
				if _, ok := byKey[k]; !ok {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			sort.Strings(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() []interface{} { return []interface{}{keyState{}} },
		Step: step,
		DescribeOperation: func(inI, outI interface{}) string {
			in, out := inI.(input), outI.(output)
			res := fmt.Sprintf("rev %d", out.Rev)
			switch {
			case out.Unknown:
				res = "unknown"
			case out.LeaseNotFound:
				res = "lease not found"
			case in.Kind == opGet && out.Found:
				res = fmt.Sprintf("%q@%d", out.Value, out.ModRev)
			case in.Kind == opGet:
				res = "not found"
			case in.Kind == opDelete:
				res = fmt.Sprintf("deleted %d, rev %d", out.Deleted, out.Rev)
			case in.Kind == opCAS:
				res = fmt.Sprintf("succeeded=%v, rev %d", out.Succeeded, out.Rev)
			}
			return fmt.Sprintf("%s(%s %q lease=%d rev=%d) -> %s", in.Kind, in.Key, in.Value, in.Lease, in.Rev, res)
		},
		DescribeState: func(st interface{}) string {
			s := st.(keyState)
			if !s.Exists {
				return "absent"
			}
			return fmt.Sprintf("%q@%d lease=%d", s.Value, s.ModRev, s.Lease)
		},
	}
}
