package coord

import (
	"context"
	"fmt"
	"slices"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/members"
	"github.com/coordkit/coordkit/coord/internal/meta"
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

// MemberOption configures AddMember, RemoveMember and PromoteMember.
type MemberOption func(*members.Options)

// AsObserver makes AddMember add a non-voting member (an observer).
func AsObserver() MemberOption { return func(o *members.Options) { o.Observer = true } }

// Force skips the quorum check of AddMember, RemoveMember and
// PromoteMember: the change is made even if the voters reachable now could
// not form a quorum afterwards. Use it only to recover a cluster whose
// unreachable members are gone for good.
func Force() MemberOption { return func(o *members.Options) { o.Force = true } }

func memberOptions(opts []MemberOption) members.Options {
	var o members.Options
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// Members lists the cluster's members, ordered by ID, from the membership of
// shard 0 as committed through Raft (linearizable). Reachable is known at
// once for the members this member hears from; the others are probed
// concurrently, so the call takes at most about half an election timeout
// longer than the read. Errors: those of Get.
func (n *Node) Members(ctx context.Context) ([]Member, error) {
	if err := n.m.Host.Check(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := n.m.Host.WithTimeout(ctx)
	defer cancel()
	_, ms, err := n.m.Members.Current(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = Member(m)
	}
	return out, nil
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
// (or a removed member's), ErrInvalidArgument for a bad name or address,
// ErrQuorum, plus those of Put.
func (n *Node) AddMember(ctx context.Context, name, addr string, opts ...MemberOption) (*Member, error) {
	if err := n.m.Host.Check(ctx); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, fmt.Errorf("%w: member name: empty", ErrInvalidArgument)
	}
	if err := members.ValidAddress(addr); err != nil {
		return nil, fmt.Errorf("%w: member address: %v", ErrInvalidArgument, err)
	}
	ctx, cancel := n.m.Host.WithTimeout(ctx)
	defer cancel()
	m, err := n.m.Members.Add(ctx, name, addr, meta.JoinedReplicaID(n.m.Cfg.ClusterToken, name, addr), memberOptions(opts))
	if err != nil {
		return nil, err
	}
	return (*Member)(m), nil
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
	if err := n.m.Host.Check(ctx); err != nil {
		return err
	}
	ctx, cancel := n.m.Host.WithTimeout(ctx)
	defer cancel()
	target, ms, err := n.m.Members.Named(ctx, name)
	if err != nil {
		return err
	}
	return n.m.Members.Remove(ctx, target, ms, memberOptions(opts))
}

// PromoteMember turns the observer named name into a voter in every shard.
// It is refused with ErrQuorum when the voters reachable now, with the
// observer, would not be a quorum of the larger set (Force overrides). The
// observer must be running and caught up to be useful as a voter; it keeps
// its ID. It blocks until every shard has committed the change or ctx ends.
// Errors: ErrMemberNotFound, ErrInvalidArgument when the member is already
// a voter, ErrQuorum, plus those of Put.
func (n *Node) PromoteMember(ctx context.Context, name string, opts ...MemberOption) error {
	if err := n.m.Host.Check(ctx); err != nil {
		return err
	}
	return n.m.Members.Promote(ctx, name, memberOptions(opts))
}

// MoveLeader hands the leadership of shard to the voter named name, like
// etcdctl move-leader, and blocks until this member sees it lead or ctx
// ends. Errors: ErrMemberNotFound; ErrInvalidArgument for an observer (only
// voters lead) or a shard out of range; ctx's error (wrapped) when the
// transfer did not complete in time, for example because the target is
// down or behind.
func (n *Node) MoveLeader(ctx context.Context, shard int, name string) error {
	if err := n.m.Host.Check(ctx); err != nil {
		return err
	}
	return n.m.Members.MoveLeader(ctx, shard, name)
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
	// StoreBytes is the shard's store as Config.MaxStoreBytes counts it,
	// on this member's replica; NoSpace reports its NOSPACE alarm.
	StoreBytes int64
	NoSpace    bool
	// Corrupt reports its CORRUPT alarm (Node.Alarms names the members).
	Corrupt bool
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
	// MaxStoreBytes is this member's Config.MaxStoreBytes (negative: none).
	MaxStoreBytes int64
}

// Status reports this member's view of every shard, from its own replica;
// it never blocks on the network.
func (n *Node) Status(ctx context.Context) (*Status, error) {
	if err := n.m.Host.Check(ctx); err != nil {
		return nil, err
	}
	st := &Status{Member: n.m.Cfg.Name, ReplicaID: n.m.Host.ReplicaID(), DiskLow: n.m.Host.DiskLow(), MaxStoreBytes: n.m.Cfg.MaxStoreBytes}
	for _, s := range n.m.Shards {
		v := s.View()
		ss := ShardStatus{Shard: s.Index, Revision: Revision(v.Revision()), CompactRevision: Revision(v.CompactRevision()),
			AppliedIndex: v.Applied(), Leases: len(v.Leases()), StoreBytes: v.Bytes(), NoSpace: v.NoSpace(), Corrupt: len(v.Corrupt()) > 0}
		ss.Leader, ss.Term, _ = s.Leader()
		st.Shards = append(st.Shards, ss)
	}
	return st, nil
}

// The kinds of alarm.
const (
	// AlarmNoSpace names the alarm of a shard whose store reached
	// Config.MaxStoreBytes: writes that grow it are refused (ErrNoSpace).
	AlarmNoSpace = "NOSPACE"
	// AlarmCorrupt names the alarm of a shard whose replicas an integrity
	// check found diverged (Node.CheckHash): its writes are refused
	// (ErrCorruptAlarm).
	AlarmCorrupt = "CORRUPT"
)

// Alarm is an alarm raised on a shard.
type Alarm struct {
	Shard int
	Kind  string // AlarmNoSpace or AlarmCorrupt
	// Members, for a CORRUPT alarm, names the members whose replica's
	// hash differed from the most common one (every member that reported
	// when no hash was the most common), by name, or by replica ID in
	// hexadecimal for a member this one cannot name; MemberIDs holds their
	// replica IDs, in the same order.
	Members   []string
	MemberIDs []uint64
}

// Alarms lists the alarms raised, by shard (linearizable: it reads every
// shard after a ReadIndex round). Errors: those of Get.
func (n *Node) Alarms(ctx context.Context) ([]Alarm, error) {
	ctx, cancel := n.m.Host.WithTimeout(ctx)
	defer cancel()
	var out []Alarm
	for _, s := range n.m.Shards {
		v, err := s.Read(ctx, false)
		if err != nil {
			return nil, err
		}
		if v.NoSpace() {
			out = append(out, Alarm{Shard: s.Index, Kind: AlarmNoSpace})
		}
		if ids := v.Corrupt(); len(ids) > 0 {
			out = append(out, Alarm{Shard: s.Index, Kind: AlarmCorrupt, Members: n.memberNames(ids), MemberIDs: ids})
		}
	}
	return out, nil
}

// DisarmAlarms clears every alarm raised (etcdctl alarm disarm), or with
// kinds (AlarmNoSpace, AlarmCorrupt) only the alarms of those kinds,
// through Raft. A shard still at its quota raises its NOSPACE alarm again at the
// next write that would grow it: free space first. A CORRUPT alarm is
// raised again by the next check that finds the replicas diverged: replace
// the members it names first. It blocks until every shard with an alarm
// has cleared it, or ctx ends. Errors: ErrInvalidArgument for an unknown
// kind, and those of Put.
func (n *Node) DisarmAlarms(ctx context.Context, kinds ...string) error {
	for _, k := range kinds {
		if k != AlarmNoSpace && k != AlarmCorrupt {
			return fmt.Errorf("%w: alarm kind %q", ErrInvalidArgument, k)
		}
	}
	alarms, err := n.Alarms(ctx)
	if err != nil {
		return err
	}
	for _, a := range alarms {
		if len(kinds) > 0 && !slices.Contains(kinds, a.Kind) {
			continue
		}
		kind := sm.AlarmNoSpace
		if a.Kind == AlarmCorrupt {
			kind = sm.AlarmCorrupt
		}
		res, err := n.m.Shards[a.Shard].Propose(ctx, &sm.Command{Kind: sm.CmdAlarm, Alarm: kind})
		if err != nil {
			return err
		}
		if err := res.Code.Err(); err != nil {
			return err
		}
	}
	return nil
}
