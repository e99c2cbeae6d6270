// Package members reads and changes a cluster's membership, for package
// coord's AddMember, RemoveMember, PromoteMember, MoveLeader and Members,
// and for the admission of observers (coord/internal/admit).
//
// Every shard is its own Raft group, so a member is added to or removed
// from each shard in turn, one change at a time (dragonboat's rule), and a
// call interrupted half-way is completed by calling it again with the same
// arguments. Shard 0's membership is the one listed; its replicated member
// records name the members added at run time. Changes that would leave the
// voters unable to form a quorum with the members reachable now are
// refused (etcd's strict reconfiguration check), unless forced.
//
// A Manager is safe for concurrent use; its calls block until they
// complete or their context ends.
package members

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/meta"
	"github.com/coordkit/coordkit/coord/internal/raftnode"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Member describes one member of the cluster: coord.Member, field for
// field (package coord converts one to the other).
type Member struct {
	Name      string
	ID        uint64
	Address   string
	Voter     bool
	Leads     []int
	Reachable bool
}

// Options modify Add, Remove and Promote.
type Options struct {
	// Observer: add a non-voting member.
	Observer bool
	// Force: skip the quorum check.
	Force bool
	// ReuseName: an observer admitted through JoinSeeds, which gets a new
	// ID each time it joins afresh, may take a removed member's name.
	ReuseName bool
}

// Manager manages one member's view of the membership.
type Manager struct {
	host     *raftnode.Host
	founders map[string]meta.Peer // by name: the founding members
	election time.Duration
}

// New returns the manager of host's cluster; founders are the founding
// members, as this member's file records them; election is the election
// timeout.
func New(host *raftnode.Host, founders map[string]meta.Peer, election time.Duration) *Manager {
	return &Manager{host: host, founders: founders, election: election}
}

// names maps replica IDs to member names: founders from this member's
// InitialCluster (founders), joiners from the member records replicated in
// shard 0.
func (c *Manager) names(v *sm.View) map[uint64]string {
	names := map[uint64]string{}
	for name, mm := range c.founders {
		names[mm.ReplicaID] = name
	}
	for _, r := range v.Members() {
		names[r.ID] = r.Name
	}
	return names
}

// Names maps every known member's replica ID to its name, from this
// member's replica of shard 0 (no network).
func (c *Manager) Names() map[uint64]string { return c.names(c.host.Shards()[0].View()) }

// describe lists m's members (without Reachable), ordered by ID.
func (c *Manager) Describe(m *raftnode.Membership) []Member {
	names := c.names(c.host.Shards()[0].View())
	var out []Member
	add := func(id uint64, addr string, voter bool) {
		mb := Member{Name: names[id], ID: id, Address: addr, Voter: voter}
		for _, s := range c.host.Shards() {
			if l, _, ok := s.Leader(); ok && l == id {
				mb.Leads = append(mb.Leads, s.Index)
			}
		}
		out = append(out, mb)
	}
	for id, addr := range m.Voters {
		add(id, addr, true)
	}
	for id, addr := range m.Observers {
		add(id, addr, false)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// probe sets Reachable on every member: this member is; an observer is
// when this member heard from it lately (see heard); otherwise a member is
// when a TCP connection to its RaftAddress opens within half an election
// timeout. A connection says the process listens, not that it is healthy.
// A leader hears from every observer that follows it, so a listing or a
// membership change dials the voters only, not every instance of a fleet.
// Voters are always dialed: quorum checks rest on them, and a voter that
// stopped a moment ago must not count as reachable.
func (c *Manager) probe(ctx context.Context, ms []Member) {
	var wg sync.WaitGroup
	for i := range ms {
		if ms[i].ID == c.host.ReplicaID() || !ms[i].Voter && c.heard(ms[i].Address) {
			ms[i].Reachable = true
			continue
		}
		wg.Add(1)
		go func(m *Member) {
			defer wg.Done()
			m.Reachable = c.Reachable(ctx, m.Address)
		}(&ms[i])
	}
	wg.Wait()
}

// heard reports whether a message from the member at addr arrived within
// the last two election timeouts: a member answers every heartbeat of the
// shard leaders it follows, several a timeout.
func (c *Manager) heard(addr string) bool {
	at, ok := c.host.Heard(addr)
	return ok && time.Since(at) < 2*c.election
}

// Reachable reports whether a TCP connection to addr opens within half an
// election timeout.
func (c *Manager) Reachable(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: c.election / 2}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// quorumAfter checks that the voters in after, reachable now, form a
// quorum of after. reach holds the reachable members by ID.
func quorumAfter(after map[uint64]bool, reach map[uint64]bool) error {
	if len(after) == 0 {
		return fmt.Errorf("%w: no voter would remain", errdefs.ErrQuorum)
	}
	up := 0
	for id := range after {
		if reach[id] {
			up++
		}
	}
	if need := len(after)/2 + 1; up < need {
		return fmt.Errorf("%w: %d of %d voters would be reachable, %d needed", errdefs.ErrQuorum, up, len(after), need)
	}
	return nil
}

// current reads shard 0's membership and describes it with reachability.
func (c *Manager) Current(ctx context.Context) (*raftnode.Membership, []Member, error) {
	m, err := c.host.Shards()[0].Membership(ctx)
	if err != nil {
		return nil, nil, err
	}
	ms := c.Describe(m)
	c.probe(ctx, ms)
	return m, ms, nil
}

// memberNamed finds the member named name in the current membership.
func (c *Manager) Named(ctx context.Context, name string) (Member, []Member, error) {
	_, ms, err := c.Current(ctx)
	if err != nil {
		return Member{}, nil, err
	}
	m, err := findMember(ms, name)
	return m, ms, err
}

func findMember(ms []Member, name string) (Member, error) {
	for _, m := range ms {
		if m.Name == name {
			return m, nil
		}
	}
	return Member{}, fmt.Errorf("%w: %q", errdefs.ErrMemberNotFound, name)
}

// voterSet returns the IDs of ms's voters, and the reachable members.
func voterSet(ms []Member) (voters, reach map[uint64]bool) {
	voters, reach = map[uint64]bool{}, map[uint64]bool{}
	for _, m := range ms {
		if m.Voter {
			voters[m.ID] = true
		}
		if m.Reachable {
			reach[m.ID] = true
		}
	}
	return voters, reach
}

// Add adds the member name at addr, with replica ID id, to every shard
// that lacks it, after recording its name in shard 0. It is refused with
// ErrMemberExists for a name or address in use or removed, and, for a
// voter, with ErrQuorum (o.Force overrides). It blocks until every shard
// has committed the change or ctx ends.
func (c *Manager) Add(ctx context.Context, name, addr string, id uint64, o Options) (*Member, error) {
	ctx, cancel := c.host.WithTimeout(ctx)
	defer cancel()
	s0 := c.host.Shards()[0]
	if _, err := s0.Read(ctx, false); err != nil {
		return nil, err
	}
	m, ms, err := c.Current(ctx)
	if err != nil {
		return nil, err
	}
	if _, gone := m.Removed[id]; gone {
		return nil, fmt.Errorf("%w: member %q at %s was removed; Raft IDs are never reused, use another name", errdefs.ErrMemberExists, name, addr)
	}
	if !o.ReuseName {
		names := c.names(c.host.Shards()[0].View())
		for rid := range m.Removed {
			if names[rid] == name {
				return nil, fmt.Errorf("%w: a removed member was named %q; a name is not reused in a cluster, use another", errdefs.ErrMemberExists, name)
			}
		}
	}
	resume := false // a retry of an AddMember that did not reach every shard
	for _, mb := range ms {
		switch {
		case mb.ID == id && mb.Name == name && mb.Address == addr && mb.Voter == !o.Observer:
			resume = true
		case mb.Address == addr:
			return nil, fmt.Errorf("%w: address %s is member %q", errdefs.ErrMemberExists, addr, mb.Name)
		case mb.Name == name:
			return nil, fmt.Errorf("%w: name %q", errdefs.ErrMemberExists, name)
		}
	}
	if !o.Observer && !o.Force && !resume {
		voters, reach := voterSet(ms)
		voters[id] = true
		if err := quorumAfter(voters, reach); err != nil {
			return nil, fmt.Errorf("coord: adding voter %q: %w", name, err)
		}
	}
	// A retry completes the shards an interrupted call left; if none is
	// left, the member simply exists.
	var todo []*raftnode.Shard
	for _, s := range c.host.Shards() {
		mm, err := s.Membership(ctx)
		if err != nil {
			return nil, err
		}
		if !mm.Has(id, true) && !mm.Has(id, false) {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		return nil, fmt.Errorf("%w: name %q", errdefs.ErrMemberExists, name)
	}
	res, err := s0.Propose(ctx, &sm.Command{Kind: sm.CmdMember, Member: sm.MemberRecord{ID: id, Name: name, Address: addr}})
	if err != nil {
		return nil, err
	}
	if res.Code != sm.CodeOK {
		return nil, fmt.Errorf("coord: the member record was refused (code %d)", res.Code)
	}
	for _, s := range todo {
		if err := s.AddReplica(ctx, id, addr, !o.Observer); err != nil {
			return nil, fmt.Errorf("coord: adding member %q to shard %d: %w", name, s.Index, err)
		}
	}
	return &Member{Name: name, ID: id, Address: addr, Voter: !o.Observer}, nil
}

// Remove removes target from every shard; ms is the current membership
// (Current). A voter's removal is refused with ErrQuorum when the voters
// left and reachable would not be a quorum (o.Force overrides; the last
// voter is never removed); where it leads a shard, the leadership is handed
// to a reachable voter first. It blocks until every shard has committed the
// change or ctx ends.
func (c *Manager) Remove(ctx context.Context, target Member, ms []Member, o Options) error {
	if target.Voter {
		voters, reach := voterSet(ms)
		delete(voters, target.ID)
		if len(voters) == 0 {
			return fmt.Errorf("coord: removing %q: %w: it is the last voter", target.Name, errdefs.ErrQuorum)
		}
		if err := quorumAfter(voters, reach); err != nil && !o.Force {
			return fmt.Errorf("coord: removing %q: %w", target.Name, err)
		}
		c.handOver(ctx, target.ID, voters, reach)
	}
	for _, s := range c.host.Shards() {
		if err := s.RemoveReplica(ctx, target.ID); err != nil {
			return fmt.Errorf("coord: removing member %q from shard %d: %w", target.Name, s.Index, err)
		}
	}
	return nil
}

// handOver moves the leadership of every shard led by id to a reachable
// voter in to, waiting up to an election timeout in all. A shard that does
// not move in time elects a new leader once id is removed.
func (c *Manager) handOver(ctx context.Context, id uint64, to, reach map[uint64]bool) {
	var next uint64
	for v := range to {
		if reach[v] && (next == 0 || v < next) {
			next = v
		}
	}
	if next == 0 {
		return
	}
	var moving []*raftnode.Shard
	for _, s := range c.host.Shards() {
		if l, _, ok := s.Leader(); ok && l == id {
			if s.TransferLeader(next) == nil {
				moving = append(moving, s)
			}
		}
	}
	deadline := time.Now().Add(c.election)
	for _, s := range moving {
		for attempt := 0; time.Now().Before(deadline); attempt++ {
			if l, _, ok := s.Leader(); ok && l != id {
				break
			}
			if !c.host.Backoff(ctx, attempt) {
				return
			}
		}
	}
}

// Promote turns the observer named name into a voter in every shard,
// unless the voters reachable now, with it, would not be a quorum of the
// larger set (ErrQuorum; o.Force overrides). It blocks until every shard
// has committed the change or ctx ends. Errors: ErrMemberNotFound,
// ErrInvalidArgument when the member is a voter already, ErrQuorum, and
// those of a write.
func (c *Manager) Promote(ctx context.Context, name string, o Options) error {
	ctx, cancel := c.host.WithTimeout(ctx)
	defer cancel()
	target, ms, err := c.Named(ctx, name)
	if err != nil {
		return err
	}
	if target.Voter {
		return fmt.Errorf("%w: member %q is already a voter", errdefs.ErrInvalidArgument, name)
	}
	if !o.Force {
		voters, reach := voterSet(ms)
		voters[target.ID] = true
		if err := quorumAfter(voters, reach); err != nil {
			return fmt.Errorf("coord: promoting %q: %w", name, err)
		}
	}
	for _, s := range c.host.Shards() {
		if err := s.AddReplica(ctx, target.ID, target.Address, true); err != nil {
			return fmt.Errorf("coord: promoting member %q in shard %d: %w", name, s.Index, err)
		}
	}
	return nil
}

// MoveLeader hands the leadership of shard to the voter named name, and
// blocks until this member sees it lead or ctx ends. Errors:
// ErrMemberNotFound; ErrInvalidArgument for an observer (only voters lead)
// or a shard out of range; ctx's error (wrapped) when the transfer did not
// complete in time.
func (c *Manager) MoveLeader(ctx context.Context, shard int, name string) error {
	if shard < 0 || shard >= len(c.host.Shards()) {
		return fmt.Errorf("%w: shard %d is outside 0..%d", errdefs.ErrInvalidArgument, shard, len(c.host.Shards())-1)
	}
	ctx, cancel := c.host.WithTimeout(ctx)
	defer cancel()
	m, err := c.host.Shards()[0].Membership(ctx)
	if err != nil {
		return err
	}
	target, err := findMember(c.Describe(m), name)
	if err != nil {
		return err
	}
	if !target.Voter {
		return fmt.Errorf("%w: member %q is an observer; only voters lead", errdefs.ErrInvalidArgument, name)
	}
	s := c.host.Shards()[shard]
	var asked time.Time
	for attempt := 0; ; attempt++ {
		if l, _, ok := s.Leader(); ok && l == target.ID {
			return nil
		}
		if time.Since(asked) > c.election {
			// Asked again each election timeout: a request sent while the
			// shard had no leader, or that the leader dropped, is lost.
			s.TransferLeader(target.ID)
			asked = time.Now()
		}
		if !c.host.Backoff(ctx, min(attempt, 4)) {
			if err := c.host.Check(ctx); err != nil {
				return fmt.Errorf("coord: moving shard %d's leadership to %q: %w", shard, name, err)
			}
			return c.host.ErrClosed()
		}
	}
}

// ValidAddress checks that a is a host:port address with a host and a
// port in 1..65535.
func ValidAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", a, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", a)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("%q has a bad port", a)
	}
	return nil
}

// Loopback reports whether addr's host is a loopback address or localhost.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
