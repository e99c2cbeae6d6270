package coord

import (
	"context"
	"sort"
)

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

// Members lists the cluster's members, ordered by ID, from the membership of
// shard 0 as committed through Raft (linearizable). Errors: those of Get.
func (n *Node) Members(ctx context.Context) ([]Member, error) {
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	var m0 map[uint64]string
	var nonVoting map[uint64]string
	for attempt := 0; ; attempt++ {
		m, err := n.nh.SyncGetShardMembership(ctx, n.shards[0].id)
		if err == nil {
			m0, nonVoting = m.Nodes, m.NonVotings
			break
		}
		if retryable(err) && n.backoff(ctx, attempt) {
			continue
		}
		return nil, translate(ctx, err, false)
	}
	names := map[uint64]string{}
	for name, mm := range n.meta.Members {
		names[mm.ReplicaID] = name
	}
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
	for id, addr := range m0 {
		add(id, addr, true)
	}
	for id, addr := range nonVoting {
		add(id, addr, false)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
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
