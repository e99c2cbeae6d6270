package sm

import (
	"slices"
)

// The integrity check. A CmdHashCheck applied at Raft index I starts check
// I: every replica that applies it hashes its state as of I (View.Hash, off
// the apply path: Listener.HashCheck) and proposes the hash in a
// CmdHashReport. Each report is applied in log order on every replica, so
// every replica agrees on the reports and on what they show: when two
// reports of the current check differ, the CORRUPT alarm is raised, naming
// the replicas whose hash differs from the most common one (every replica
// that reported, while no hash is the most common), and commands that
// would change the store are refused (CodeCorrupt) until it is cleared.

// HashReport is one replica's hash in an integrity check.
type HashReport struct {
	Replica uint64
	Hash    uint64
}

// HashCheck is an integrity check as a View holds it: the latest one.
type HashCheck struct {
	Index    uint64 // the Raft index of its CmdHashCheck, which names it
	Revision int64  // the revision of the state hashed
	Reports  []HashReport
	// Disarmed: the CORRUPT alarm was cleared since the check started;
	// its later reports raise nothing.
	Disarmed bool
}

// check is the state's current check. It is shared with views, so it is
// replaced, never changed in place.
type check = HashCheck

// startCheck starts check index, replacing any earlier one.
func (s *state) startCheck(index uint64) {
	s.check = &check{Index: index, Revision: s.rev}
}

// report applies replica's hash for check id; a report for another check
// than the current one, or a second one of a replica, is ignored.
func (s *state) report(id, replica, hash uint64) {
	c := s.check
	if c == nil || c.Index != id || c.Disarmed || replica == 0 {
		return
	}
	for _, r := range c.Reports {
		if r.Replica == replica {
			return
		}
	}
	n := *c
	n.Reports = append(slices.Clip(c.Reports), HashReport{Replica: replica, Hash: hash})
	s.check = &n
	if named := Diverged(n.Reports); named != nil {
		s.corrupt = named
	}
}

// Diverged returns, sorted, the replicas a mismatch among reports names:
// those whose hash is not the most common one, or all of them when no hash
// is; nil when every hash is the same.
func Diverged(reports []HashReport) []uint64 {
	count := map[uint64]int{}
	for _, r := range reports {
		count[r.Hash]++
	}
	if len(count) < 2 {
		return nil
	}
	most := 0
	for _, n := range count {
		most = max(most, n)
	}
	var best uint64
	tops := 0
	for h, n := range count {
		if n == most {
			best, tops = h, tops+1
		}
	}
	tie := tops > 1
	var named []uint64
	for _, r := range reports {
		if tie || r.Hash != best {
			named = append(named, r.Replica)
		}
	}
	slices.Sort(named)
	return named
}

// clearCorrupt clears the CORRUPT alarm; the current check's later
// reports raise it no more.
func (s *state) clearCorrupt() {
	s.corrupt = nil
	if c := s.check; c != nil && !c.Disarmed {
		n := *c
		n.Disarmed = true
		s.check = &n
	}
}

// changesStore reports whether cmd would change the store: what the
// CORRUPT alarm refuses. Keep-alives, membership records, alarms and the
// check's own commands are let through, so that sessions hold and the
// operator can replace the diverged member and clear the alarm.
func changesStore(cmd *Command) bool {
	switch cmd.Kind {
	case CmdTxn:
		for _, ops := range [][]Op{cmd.Txn.Then, cmd.Txn.Else} {
			for i := range ops {
				if ops[i].Kind != OpRange {
					return true
				}
			}
		}
		return false
	case CmdCompact, CmdGrant, CmdRevoke, CmdExpire:
		return true
	}
	return false
}

// HashCheck returns the latest integrity check, if any.
func (v *View) HashCheck() (HashCheck, bool) {
	if v.st.check == nil {
		return HashCheck{}, false
	}
	c := *v.st.check
	c.Reports = slices.Clone(c.Reports)
	return c, true
}

// Corrupt returns the replicas the CORRUPT alarm names, sorted; nil when it
// is not raised.
func (v *View) Corrupt() []uint64 { return slices.Clone(v.st.corrupt) }

// Tamper sets the value of key's live version on this replica alone,
// outside Raft, and reports whether key was live. It exists for tests of
// the integrity check, which must see one replica diverge; nothing else
// calls it.
func (m *Machine) Tamper(key string, value []byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	kv, ok := m.st.get(key)
	if !ok {
		return false
	}
	kv.Value = value
	m.st.cur.ReplaceOrInsert(liveOf(&kv))
	m.stale.Store(true)
	return true
}

// encodeIntegrity writes s's check and CORRUPT alarm to a snapshot.
func encodeIntegrity(e *encoder, s *state) {
	e.uvar(uint64(len(s.corrupt)))
	for _, id := range s.corrupt {
		e.uvar(id)
	}
	c := s.check
	e.flag(c != nil)
	if c == nil {
		return
	}
	e.uvar(c.Index)
	e.svar(c.Revision)
	e.flag(c.Disarmed)
	e.uvar(uint64(len(c.Reports)))
	for _, r := range c.Reports {
		e.uvar(r.Replica)
		e.uvar(r.Hash)
	}
}

// decodeIntegrity reads what encodeIntegrity wrote into s.
func decodeIntegrity(d *decoder, s *state) {
	n := d.count()
	for i := 0; i < n && d.err == nil; i++ {
		s.corrupt = append(s.corrupt, d.uvar())
	}
	if !d.flag() || d.err != nil {
		return
	}
	c := &check{Index: d.uvar(), Revision: d.svar(), Disarmed: d.flag()}
	n = d.count()
	for i := 0; i < n && d.err == nil; i++ {
		c.Reports = append(c.Reports, HashReport{Replica: d.uvar(), Hash: d.uvar()})
	}
	if c.Index > s.applied || c.Revision > s.rev {
		d.fail() // from the future: corrupt
	}
	s.check = c
}
