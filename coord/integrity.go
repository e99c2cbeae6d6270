package coord

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/coordkit/coordkit/coord/internal/member"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// HashCheck is the outcome of an integrity check of one shard: each
// replica's hash of the shard's state as of one Raft log entry, so of one
// revision.
type HashCheck struct {
	Shard    int
	Revision Revision // the revision the state was hashed at
	// Hashes holds a hash for each member that reported one, in the order
	// the reports were committed; equal hashes mean equal states.
	Hashes []MemberHash
	// Missing names the voters that had not reported when CheckHash
	// returned (a member down, or slow to hash a large store).
	Missing []string
	// Corrupt names the members the check found diverged, as the CORRUPT
	// alarm names them (see Alarm.Members); empty when every hash agreed.
	Corrupt []string
}

// MemberHash is one member's hash in a HashCheck.
type MemberHash struct {
	Member    string // its name, or its replica ID in hexadecimal
	ReplicaID uint64
	Hash      uint64
}

// CheckHash runs an integrity check of every shard now, as the shard
// leaders do every Config.HashCheckInterval, and returns its outcome,
// ordered by shard. It starts a check through Raft on each shard (every
// replica, observers included, hashes the shard's state as of that log
// entry, off its apply path, and reports the hash through Raft); it then
// waits until every voter of the shard has reported. A mismatch raises
// the shard's CORRUPT alarm, which stops the shard's writes
// (ErrCorruptAlarm) and names the members whose hash differs from the
// most common one; CheckHash reports the same names in HashCheck.Corrupt
// and returns no error for it.
//
// It blocks until every shard's voters have reported or ctx ends; without
// a deadline on ctx it waits at most a minute. When it stops waiting, it
// returns what the checks hold, with the voters that did not report in
// Missing, and ctx's error (or context.DeadlineExceeded). A later check,
// started by a shard leader meanwhile, may take the place of one started
// here: CheckHash then reports the later one. Errors: those of Put.
func (n *Node) CheckHash(ctx context.Context) ([]HashCheck, error) {
	if err := n.m.Host.Check(ctx); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	started := make([]uint64, len(n.m.Shards))
	for i, s := range n.m.Shards {
		if hc, ok := s.View().HashCheck(); ok {
			started[i] = hc.Index
		}
		res, err := s.Propose(ctx, &sm.Command{Kind: sm.CmdHashCheck})
		if err != nil {
			return nil, err
		}
		if err := res.Code.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]HashCheck, len(n.m.Shards))
	var waitErr error
	for i, s := range n.m.Shards {
		hc, err := n.awaitCheck(ctx, s, started[i])
		if err != nil && waitErr == nil {
			waitErr = err
		}
		out[i] = hc
	}
	return out, waitErr
}

// awaitCheck waits until shard s's replica holds a check later than
// after with a report from every voter, or ctx ends, and describes it.
func (n *Node) awaitCheck(ctx context.Context, s *member.Shard, after uint64) (HashCheck, error) {
	ms, err := s.Membership(ctx)
	if err != nil {
		return HashCheck{Shard: s.Index}, err
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		hc, _ := s.View().HashCheck()
		var missing []uint64
		for id := range ms.Voters {
			if !slices.ContainsFunc(hc.Reports, func(r sm.HashReport) bool { return r.Replica == id }) {
				missing = append(missing, id)
			}
		}
		if hc.Index > after && len(missing) == 0 {
			return n.describeCheck(s.Index, hc, nil), nil
		}
		select {
		case <-ctx.Done():
			if hc.Index <= after {
				return HashCheck{Shard: s.Index}, ctx.Err()
			}
			return n.describeCheck(s.Index, hc, missing), ctx.Err()
		case <-tick.C:
		}
	}
}

// describeCheck is the HashCheck of check hc of shard.
func (n *Node) describeCheck(shard int, hc sm.HashCheck, missing []uint64) HashCheck {
	out := HashCheck{Shard: shard, Revision: Revision(hc.Revision)}
	var ids []uint64
	for _, r := range hc.Reports {
		out.Hashes = append(out.Hashes, MemberHash{ReplicaID: r.Replica, Hash: r.Hash})
		ids = append(ids, r.Replica)
	}
	for i, name := range n.memberNames(ids) {
		out.Hashes[i].Member = name
	}
	slices.Sort(missing)
	out.Missing = n.memberNames(missing)
	out.Corrupt = n.memberNames(sm.Diverged(hc.Reports))
	return out
}

// memberNames names the replicas ids: by their member names, or in
// hexadecimal for a replica this member cannot name. It returns nil for
// no ids.
func (n *Node) memberNames(ids []uint64) []string {
	if len(ids) == 0 {
		return nil
	}
	names := n.m.Members.Names()
	out := make([]string, len(ids))
	for i, id := range ids {
		if s, ok := names[id]; ok {
			out[i] = s
		} else {
			out[i] = strconv.FormatUint(id, 16)
		}
	}
	return out
}
