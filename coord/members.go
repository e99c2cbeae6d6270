package coord

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/lni/dragonboat/v4"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// ErrMemberExists: AddMember was given a name or address already in use, or
// the name and address of a removed member (Raft IDs are never reused).
var ErrMemberExists = errors.New("coord: member exists")

// Member describes one member of the cluster.
type Member struct {
	Name    string
	ID      uint64 // Raft replica ID
	Address string // RaftAddress
	Voter   bool
	// Leads lists the shards this member leads, as known to the member
	// answering.
	Leads []int
}

type membership struct {
	voters, nonVoting, removed map[uint64]string
}

func (n *Node) membership(ctx context.Context, s *shard) (*membership, error) {
	for attempt := 0; ; attempt++ {
		m, err := n.nh.SyncGetShardMembership(ctx, s.id)
		if err == nil {
			removed := map[uint64]string{}
			for id := range m.Removed {
				removed[id] = ""
			}
			return &membership{voters: m.Nodes, nonVoting: m.NonVotings, removed: removed}, nil
		}
		if retryable(err) && n.backoff(ctx, attempt) {
			continue
		}
		return nil, translate(ctx, err, false)
	}
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
// shard 0 as committed through Raft (linearizable). Errors: those of Get.
func (n *Node) Members(ctx context.Context) ([]Member, error) {
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	m, err := n.membership(ctx, n.shards[0])
	if err != nil {
		return nil, err
	}
	names := n.names(n.shards[0].machine.Load().View())
	var out []Member
	add := func(id uint64, addr string, voter bool) {
		mb := Member{Name: names[id], ID: id, Address: addr, Voter: voter}
		for _, s := range n.shards {
			if l, _, ok, err := n.nh.GetLeaderID(s.id); err == nil && ok && l == id {
				mb.Leads = append(mb.Leads, s.idx)
			}
		}
		out = append(out, mb)
	}
	for id, addr := range m.voters {
		add(id, addr, true)
	}
	for id, addr := range m.nonVoting {
		add(id, addr, false)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// AddMember adds a voting member to every shard, like etcdctl member add.
// Then start the new member with Config{Join: true} and the same name,
// address and ClusterToken. Until it has started and caught up, the cluster
// counts it in its quorum: add one member at a time, and start it promptly.
//
// Errors: ErrMemberExists for a name or address in use (or a removed
// member's), ErrInvalidConfig for a bad address, plus those of Put.
func (n *Node) AddMember(ctx context.Context, name, addr string) (*Member, error) {
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, configError("name", "empty")
	}
	if err := validAddress(addr); err != nil {
		return nil, configError("address", "%v", err)
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	s0 := n.shards[0]
	v, err := n.read(ctx, s0, false)
	if err != nil {
		return nil, err
	}
	m, err := n.membership(ctx, s0)
	if err != nil {
		return nil, err
	}
	names := n.names(v)
	id := joinedReplicaID(n.cfg.ClusterToken, name, addr)
	if _, gone := m.removed[id]; gone {
		return nil, fmt.Errorf("%w: member %q at %s was removed; Raft IDs are never reused, use another name or address", ErrMemberExists, name, addr)
	}
	for _, set := range []map[uint64]string{m.voters, m.nonVoting} {
		for mid, a := range set {
			if a == addr {
				return nil, fmt.Errorf("%w: address %s is member %q", ErrMemberExists, addr, names[mid])
			}
			if names[mid] == name {
				return nil, fmt.Errorf("%w: name %q", ErrMemberExists, name)
			}
		}
	}
	res, err := n.propose(ctx, s0, &sm.Command{Kind: sm.CmdMember, Member: sm.MemberRecord{ID: id, Name: name, Address: addr}})
	if err != nil {
		return nil, err
	}
	if err := codeErr(res.Code); err != nil {
		return nil, err
	}
	for _, s := range n.shards {
		for attempt := 0; ; attempt++ {
			err := n.nh.SyncRequestAddReplica(ctx, s.id, id, addr, 0)
			if err == nil {
				break
			}
			if (retryable(err) || errors.Is(err, dragonboat.ErrRejected)) && n.backoff(ctx, attempt) {
				continue // a config change in flight, or no leader yet
			}
			return nil, fmt.Errorf("coord: adding member %q to shard %d: %w", name, s.idx, translate(ctx, err, true))
		}
	}
	return &Member{Name: name, ID: id, Address: addr, Voter: true}, nil
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
}

// Status reports this member's view of every shard, from its own replica;
// it never blocks on the network.
func (n *Node) Status(ctx context.Context) (*Status, error) {
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	st := &Status{Member: n.cfg.Name, ReplicaID: n.replicaID}
	for _, s := range n.shards {
		v := s.machine.Load().View()
		ss := ShardStatus{Shard: s.idx, Revision: Revision(v.Revision()), CompactRevision: Revision(v.CompactRevision()),
			AppliedIndex: v.Applied(), Leases: len(v.Leases())}
		if l, term, ok, err := n.nh.GetLeaderID(s.id); err == nil && ok {
			ss.Leader, ss.Term = l, term
		}
		st.Shards = append(st.Shards, ss)
	}
	return st, nil
}
