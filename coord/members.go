package coord

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/raftnode"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Membership errors. Match them with errors.Is.
var (
	// ErrMemberExists: AddMember was given a name or address already in
	// use, or the name and address of a removed member (Raft IDs are never
	// reused).
	ErrMemberExists = errdefs.ErrMemberExists
	// ErrMemberNotFound: no current member has the name given.
	ErrMemberNotFound = errdefs.ErrMemberNotFound
	// ErrQuorum: a membership change would leave the voters unable to
	// reach a quorum with the members reachable now (etcd's strict
	// reconfiguration check). Force overrides it.
	ErrQuorum = errdefs.ErrQuorum
)

// Member describes one member of the cluster.
type Member struct {
	Name    string
	ID      uint64 // Raft replica ID, never reused
	Address string // RaftAddress
	// Voter: a voting member. Otherwise an observer (a non-voting replica):
	// it reads and watches locally and never counts toward quorum.
	Voter bool
	// Leads lists the shards this member leads, as known to the member
	// answering.
	Leads []int
	// Reachable: the answering member is this member, or opened a TCP
	// connection to its RaftAddress within half an election timeout; for
	// an observer, Raft traffic from it in the last two election timeouts
	// is enough.
	Reachable bool
}

// MemberOption configures AddMember and RemoveMember.
type MemberOption func(*memberConfig)

type memberConfig struct {
	observer, force bool
	reuseName       bool // an observer admitted through JoinSeeds, which gets a new ID each time
}

// AsObserver makes AddMember add a non-voting member (an observer).
func AsObserver() MemberOption { return func(c *memberConfig) { c.observer = true } }

// Force skips the quorum check of AddMember, RemoveMember and
// PromoteMember: the change is made even if the voters reachable now could
// not form a quorum afterwards. Use it only to recover a cluster whose
// unreachable members are gone for good.
func Force() MemberOption { return func(c *memberConfig) { c.force = true } }

func memberOptions(opts []MemberOption) memberConfig {
	var c memberConfig
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// names maps replica IDs to member names: founders from this member's
// InitialCluster, joiners from the member records replicated in shard 0.
func (n *Node) names(v *sm.View) map[uint64]string {
	names := map[uint64]string{}
	for name, mm := range n.meta.Members {
		names[mm.ReplicaID] = name
	}
	for _, r := range v.Members() {
		names[r.ID] = r.Name
	}
	return names
}

// Members lists the cluster's members, ordered by ID, from the membership of
// shard 0 as committed through Raft (linearizable). Reachable is known at
// once for the members this member hears from; the others are probed
// concurrently, so the call takes at most about half an election timeout
// longer than the read. Errors: those of Get.
func (n *Node) Members(ctx context.Context) ([]Member, error) {
	if err := n.host.Check(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := n.host.WithTimeout(ctx)
	defer cancel()
	_, out, err := n.current(ctx)
	return out, err
}

// describe lists m's members (without Reachable), ordered by ID.
func (n *Node) describe(m *raftnode.Membership) []Member {
	names := n.names(n.shards[0].View())
	var out []Member
	add := func(id uint64, addr string, voter bool) {
		mb := Member{Name: names[id], ID: id, Address: addr, Voter: voter}
		for _, s := range n.shards {
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
func (n *Node) probe(ctx context.Context, ms []Member) {
	var wg sync.WaitGroup
	for i := range ms {
		if ms[i].ID == n.host.ReplicaID() || !ms[i].Voter && n.heard(ms[i].Address) {
			ms[i].Reachable = true
			continue
		}
		wg.Add(1)
		go func(m *Member) {
			defer wg.Done()
			m.Reachable = n.reachable(ctx, m.Address)
		}(&ms[i])
	}
	wg.Wait()
}

// heard reports whether a message from the member at addr arrived within
// the last two election timeouts: a member answers every heartbeat of the
// shard leaders it follows, several a timeout.
func (n *Node) heard(addr string) bool {
	at, ok := n.host.Heard(addr)
	return ok && time.Since(at) < 2*n.cfg.ElectionTimeout
}

func (n *Node) reachable(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: n.cfg.ElectionTimeout / 2}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// quorumAfter checks that the voters in after, reachable now, form a
// quorum of after. reach holds the reachable members by ID.
func quorumAfter(after map[uint64]bool, reach map[uint64]bool) error {
	if len(after) == 0 {
		return fmt.Errorf("%w: no voter would remain", ErrQuorum)
	}
	up := 0
	for id := range after {
		if reach[id] {
			up++
		}
	}
	if need := len(after)/2 + 1; up < need {
		return fmt.Errorf("%w: %d of %d voters would be reachable, %d needed", ErrQuorum, up, len(after), need)
	}
	return nil
}

// current reads shard 0's membership and describes it with reachability.
func (n *Node) current(ctx context.Context) (*raftnode.Membership, []Member, error) {
	m, err := n.shards[0].Membership(ctx)
	if err != nil {
		return nil, nil, err
	}
	ms := n.describe(m)
	n.probe(ctx, ms)
	return m, ms, nil
}

// memberNamed finds the member named name in the current membership.
func (n *Node) memberNamed(ctx context.Context, name string) (Member, []Member, error) {
	_, ms, err := n.current(ctx)
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
	return Member{}, fmt.Errorf("%w: %q", ErrMemberNotFound, name)
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

// AddMember adds a member to every shard, like etcdctl member add: a voter,
// or an observer with AsObserver. Then start the new member with
// Config{Join: true} (and Observer for an observer) and the same name,
// address and ClusterToken. Until a new voter has started and caught up,
// the cluster counts it in its quorum: add one voter at a time, and start it
// promptly. Adding a voter is refused with ErrQuorum when the voters
// reachable now would not be a quorum of the larger set (Force overrides).
//
// It blocks until every shard has committed the change, or ctx ends (a
// shard left unchanged then can be completed by calling AddMember again with
// the same arguments). Errors: ErrMemberExists for a name or address in use
// (or a removed member's), ErrInvalidConfig for a bad name or address,
// ErrQuorum, plus those of Put.
func (n *Node) AddMember(ctx context.Context, name, addr string, opts ...MemberOption) (*Member, error) {
	if err := n.host.Check(ctx); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, configError("name", "empty")
	}
	if err := validAddress(addr); err != nil {
		return nil, configError("address", "%v", err)
	}
	return n.addMember(ctx, name, addr, joinedReplicaID(n.cfg.ClusterToken, name, addr), memberOptions(opts))
}

func (n *Node) addMember(ctx context.Context, name, addr string, id uint64, mc memberConfig) (*Member, error) {
	ctx, cancel := n.host.WithTimeout(ctx)
	defer cancel()
	s0 := n.shards[0]
	if _, err := s0.Read(ctx, false); err != nil {
		return nil, err
	}
	m, ms, err := n.current(ctx)
	if err != nil {
		return nil, err
	}
	if _, gone := m.Removed[id]; gone {
		return nil, fmt.Errorf("%w: member %q at %s was removed; Raft IDs are never reused, use another name", ErrMemberExists, name, addr)
	}
	if !mc.reuseName {
		names := n.names(n.shards[0].View())
		for rid := range m.Removed {
			if names[rid] == name {
				return nil, fmt.Errorf("%w: a removed member was named %q; a name is not reused in a cluster, use another", ErrMemberExists, name)
			}
		}
	}
	resume := false // a retry of an AddMember that did not reach every shard
	for _, mb := range ms {
		switch {
		case mb.ID == id && mb.Name == name && mb.Address == addr && mb.Voter == !mc.observer:
			resume = true
		case mb.Address == addr:
			return nil, fmt.Errorf("%w: address %s is member %q", ErrMemberExists, addr, mb.Name)
		case mb.Name == name:
			return nil, fmt.Errorf("%w: name %q", ErrMemberExists, name)
		}
	}
	if !mc.observer && !mc.force && !resume {
		voters, reach := voterSet(ms)
		voters[id] = true
		if err := quorumAfter(voters, reach); err != nil {
			return nil, fmt.Errorf("coord: adding voter %q: %w", name, err)
		}
	}
	// A retry completes the shards an interrupted call left; if none is
	// left, the member simply exists.
	var todo []*shard
	for _, s := range n.shards {
		mm, err := s.Membership(ctx)
		if err != nil {
			return nil, err
		}
		if !mm.Has(id, true) && !mm.Has(id, false) {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		return nil, fmt.Errorf("%w: name %q", ErrMemberExists, name)
	}
	res, err := s0.Propose(ctx, &sm.Command{Kind: sm.CmdMember, Member: sm.MemberRecord{ID: id, Name: name, Address: addr}})
	if err != nil {
		return nil, err
	}
	if err := codeErr(res.Code); err != nil {
		return nil, err
	}
	for _, s := range todo {
		if err := s.AddReplica(ctx, id, addr, !mc.observer); err != nil {
			return nil, fmt.Errorf("coord: adding member %q to shard %d: %w", name, s.Index, err)
		}
	}
	return &Member{Name: name, ID: id, Address: addr, Voter: !mc.observer}, nil
}

// RemoveMember removes the member named name from every shard, like
// etcdctl member remove. Where it leads a shard, leadership is handed to
// another reachable voter first, so the shard does not wait for an election.
// Removing a voter is refused with ErrQuorum when the voters left and
// reachable now would not be a quorum (Force overrides; the last voter is
// never removed). The removed member stops taking part at once; close it.
// Its name is not used again in the cluster, as its Raft ID is never
// reused: a replacement joins under a new name, with an empty DataDir.
//
// It blocks until every shard has committed the removal or ctx ends; call it
// again to finish an interrupted removal. Errors: ErrMemberNotFound,
// ErrQuorum, plus those of Put.
func (n *Node) RemoveMember(ctx context.Context, name string, opts ...MemberOption) error {
	if err := n.host.Check(ctx); err != nil {
		return err
	}
	mc := memberOptions(opts)
	ctx, cancel := n.host.WithTimeout(ctx)
	defer cancel()
	target, ms, err := n.memberNamed(ctx, name)
	if err != nil {
		return err
	}
	return n.removeMember(ctx, target, ms, mc)
}

func (n *Node) removeMember(ctx context.Context, target Member, ms []Member, mc memberConfig) error {
	if target.Voter {
		voters, reach := voterSet(ms)
		delete(voters, target.ID)
		if len(voters) == 0 {
			return fmt.Errorf("coord: removing %q: %w: it is the last voter", target.Name, ErrQuorum)
		}
		if err := quorumAfter(voters, reach); err != nil && !mc.force {
			return fmt.Errorf("coord: removing %q: %w", target.Name, err)
		}
		n.handOver(ctx, target.ID, voters, reach)
	}
	for _, s := range n.shards {
		if err := s.RemoveReplica(ctx, target.ID); err != nil {
			return fmt.Errorf("coord: removing member %q from shard %d: %w", target.Name, s.Index, err)
		}
	}
	return nil
}

// handOver moves the leadership of every shard led by id to a reachable
// voter in to, waiting up to an election timeout in all. A shard that does
// not move in time elects a new leader once id is removed.
func (n *Node) handOver(ctx context.Context, id uint64, to, reach map[uint64]bool) {
	var next uint64
	for v := range to {
		if reach[v] && (next == 0 || v < next) {
			next = v
		}
	}
	if next == 0 {
		return
	}
	var moving []*shard
	for _, s := range n.shards {
		if l, _, ok := s.Leader(); ok && l == id {
			if s.TransferLeader(next) == nil {
				moving = append(moving, s)
			}
		}
	}
	deadline := time.Now().Add(n.cfg.ElectionTimeout)
	for _, s := range moving {
		for attempt := 0; time.Now().Before(deadline); attempt++ {
			if l, _, ok := s.Leader(); ok && l != id {
				break
			}
			if !n.host.Backoff(ctx, attempt) {
				return
			}
		}
	}
}

// PromoteMember turns the observer named name into a voter in every shard.
// It is refused with ErrQuorum when the voters reachable now, with the
// observer, would not be a quorum of the larger set (Force overrides). The
// observer must be running and caught up to be useful as a voter; it keeps
// its ID. It blocks until every shard has committed the change or ctx ends.
// Errors: ErrMemberNotFound, ErrInvalidConfig when the member is already a
// voter, ErrQuorum, plus those of Put.
func (n *Node) PromoteMember(ctx context.Context, name string, opts ...MemberOption) error {
	if err := n.host.Check(ctx); err != nil {
		return err
	}
	mc := memberOptions(opts)
	ctx, cancel := n.host.WithTimeout(ctx)
	defer cancel()
	target, ms, err := n.memberNamed(ctx, name)
	if err != nil {
		return err
	}
	if target.Voter {
		return configError("name", "member %q is already a voter", name)
	}
	if !mc.force {
		voters, reach := voterSet(ms)
		voters[target.ID] = true
		if err := quorumAfter(voters, reach); err != nil {
			return fmt.Errorf("coord: promoting %q: %w", name, err)
		}
	}
	for _, s := range n.shards {
		if err := s.AddReplica(ctx, target.ID, target.Address, true); err != nil {
			return fmt.Errorf("coord: promoting member %q in shard %d: %w", name, s.Index, err)
		}
	}
	return nil
}

// MoveLeader hands the leadership of shard to the voter named name, like
// etcdctl move-leader, and blocks until this member sees it lead or ctx
// ends. Errors: ErrMemberNotFound; ErrInvalidConfig for an observer (only
// voters lead) or a shard out of range; ctx's error (wrapped) when the
// transfer did not complete in time, for example because the target is
// down or behind.
func (n *Node) MoveLeader(ctx context.Context, shard int, name string) error {
	if err := n.host.Check(ctx); err != nil {
		return err
	}
	if shard < 0 || shard >= len(n.shards) {
		return configError("shard", "%d is outside 0..%d", shard, len(n.shards)-1)
	}
	ctx, cancel := n.host.WithTimeout(ctx)
	defer cancel()
	m, err := n.shards[0].Membership(ctx)
	if err != nil {
		return err
	}
	target, err := findMember(n.describe(m), name)
	if err != nil {
		return err
	}
	if !target.Voter {
		return configError("name", "member %q is an observer; only voters lead", name)
	}
	s := n.shards[shard]
	var asked time.Time
	for attempt := 0; ; attempt++ {
		if l, _, ok := s.Leader(); ok && l == target.ID {
			return nil
		}
		if time.Since(asked) > n.cfg.ElectionTimeout {
			// Asked again each election timeout: a request sent while the
			// shard had no leader, or that the leader dropped, is lost.
			s.TransferLeader(target.ID)
			asked = time.Now()
		}
		if !n.host.Backoff(ctx, min(attempt, 4)) {
			if err := n.host.Check(ctx); err != nil {
				return fmt.Errorf("coord: moving shard %d's leadership to %q: %w", shard, name, err)
			}
			return n.host.ErrClosed()
		}
	}
}

// ShardStatus is one shard as this member sees it.
type ShardStatus struct {
	Shard           int
	Leader          uint64 // replica ID of the leader, 0 if unknown
	Term            uint64
	Revision        Revision
	CompactRevision Revision
	AppliedIndex    uint64
	Leases          int
}

// Status describes this member.
type Status struct {
	Member    string
	ReplicaID uint64
	Shards    []ShardStatus
	// DiskLow: the disk that holds DataDir has less free space than
	// Config.DiskReserve; the member takes no writes (ErrNoSpace) and no new
	// entries until space is freed.
	DiskLow bool
}

// Status reports this member's view of every shard, from its own replica;
// it never blocks on the network.
func (n *Node) Status(ctx context.Context) (*Status, error) {
	if err := n.host.Check(ctx); err != nil {
		return nil, err
	}
	st := &Status{Member: n.cfg.Name, ReplicaID: n.host.ReplicaID(), DiskLow: n.host.DiskLow()}
	for _, s := range n.shards {
		v := s.View()
		ss := ShardStatus{Shard: s.Index, Revision: Revision(v.Revision()), CompactRevision: Revision(v.CompactRevision()),
			AppliedIndex: v.Applied(), Leases: len(v.Leases())}
		ss.Leader, ss.Term, _ = s.Leader()
		st.Shards = append(st.Shards, ss)
	}
	return st, nil
}
