package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/coordkit/coordkit/coord"
)

type member struct {
	Name string `json:"name"`
	// Replica IDs can exceed 2^53, beyond what a JSON number keeps exactly
	// in JavaScript, so they travel as decimal strings.
	ID        uint64 `json:"id,string"`
	Address   string `json:"address"`
	Voter     bool   `json:"voter"`
	Leads     []int  `json:"leads"`
	Reachable bool   `json:"reachable"`
}

func toMember(m coord.Member) member {
	leads := m.Leads
	if leads == nil {
		leads = []int{}
	}
	return member{Name: m.Name, ID: m.ID, Address: m.Address, Voter: m.Voter, Leads: leads, Reachable: m.Reachable}
}

type membersResponse struct {
	Members []member `json:"members"`
}

func (a *api) members(ctx context.Context) (any, error) {
	ms, err := a.n.Members(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]member, 0, len(ms))
	for _, m := range ms {
		out = append(out, toMember(m))
	}
	return membersResponse{Members: out}, nil
}

type memberAddRequest struct {
	Name     string `json:"name"`
	Address  string `json:"address"`
	Observer bool   `json:"observer"`
	Force    bool   `json:"force"`
}

type memberAddResponse struct {
	Member member `json:"member"`
}

func (a *api) addMember(ctx context.Context, req *memberAddRequest) (any, error) {
	var opts []coord.MemberOption
	if req.Observer {
		opts = append(opts, coord.AsObserver())
	}
	if req.Force {
		opts = append(opts, coord.Force())
	}
	m, err := a.n.AddMember(ctx, req.Name, req.Address, opts...)
	if err != nil {
		return nil, err
	}
	return memberAddResponse{Member: toMember(*m)}, nil
}

// memberRequest is the body of remove and promote.
type memberRequest struct {
	Name  string `json:"name"`
	Force bool   `json:"force"`
}

func (r *memberRequest) options() []coord.MemberOption {
	if r.Force {
		return []coord.MemberOption{coord.Force()}
	}
	return nil
}

func (a *api) removeMember(ctx context.Context, req *memberRequest) (any, error) {
	if err := a.n.RemoveMember(ctx, req.Name, req.options()...); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (a *api) promoteMember(ctx context.Context, req *memberRequest) (any, error) {
	if err := a.n.PromoteMember(ctx, req.Name, req.options()...); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type moveLeaderRequest struct {
	Name  string `json:"name"`
	Shard int    `json:"shard"`
}

// moveLeader hands a shard's leadership to a voter (coord.Node.MoveLeader)
// and answers once this member sees it lead.
func (a *api) moveLeader(ctx context.Context, req *moveLeaderRequest) (any, error) {
	if err := checkName("name", req.Name); err != nil {
		return nil, err
	}
	if err := a.n.MoveLeader(ctx, req.Shard, req.Name); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type statusResponse struct {
	Member    string        `json:"member"`
	ReplicaID uint64        `json:"replica_id,string"`
	Shards    []shardStatus `json:"shards"`
	DiskLow   bool          `json:"disk_low,omitempty"`
}

type shardStatus struct {
	Shard           int    `json:"shard"`
	Leader          uint64 `json:"leader,string"`
	Term            uint64 `json:"term"`
	Revision        int64  `json:"revision"`
	CompactRevision int64  `json:"compact_revision"`
	AppliedIndex    uint64 `json:"applied_index"`
	Leases          int    `json:"leases"`
	StoreBytes      int64  `json:"store_bytes"`
	NoSpace         bool   `json:"nospace"`
	Corrupt         bool   `json:"corrupt"`
}

func (a *api) status(ctx context.Context) (any, error) {
	st, err := a.n.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := statusResponse{Member: st.Member, ReplicaID: st.ReplicaID, DiskLow: st.DiskLow, Shards: make([]shardStatus, 0, len(st.Shards))}
	for _, s := range st.Shards {
		out.Shards = append(out.Shards, shardStatus{
			Shard: s.Shard, Leader: s.Leader, Term: s.Term, Revision: int64(s.Revision),
			CompactRevision: int64(s.CompactRevision), AppliedIndex: s.AppliedIndex, Leases: s.Leases,
			StoreBytes: s.StoreBytes, NoSpace: s.NoSpace, Corrupt: s.Corrupt,
		})
	}
	return out, nil
}

type healthResponse struct {
	Health bool   `json:"health"`
	Reason string `json:"reason,omitempty"`
}

// health answers 200 when every shard has a leader and a linearizable read
// of every shard succeeds within healthTimeout, 503 otherwise (and while
// the member's disk is nearly full: it takes no writes). Its failure
// body is {"health":false,"reason":...}, not the error body: a probe reads
// one shape.
func (a *api) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if reason := a.unhealthy(ctx); reason != "" {
		writeJSON(w, http.StatusServiceUnavailable, healthResponse{Reason: reason})
		return
	}
	writeJSON(w, http.StatusOK, healthResponse{Health: true})
}

func (a *api) unhealthy(ctx context.Context) string {
	st, err := a.n.Status(ctx)
	if err != nil {
		return err.Error()
	}
	if st.DiskLow {
		return "disk nearly full: this member takes no writes"
	}
	for _, s := range st.Shards {
		if s.Leader == 0 {
			return fmt.Sprintf("shard %d has no leader", s.Shard)
		}
	}
	// Ready does a linearizable read of every shard.
	if err := a.n.Ready(ctx); err != nil {
		return "linearizable read failed: " + err.Error()
	}
	return ""
}

type alarm struct {
	Shard   int      `json:"shard"`
	Alarm   string   `json:"alarm"`
	Members []string `json:"members,omitempty"`
}

type alarmsResponse struct {
	Alarms []alarm `json:"alarms"`
}

// alarms lists the alarms raised (coord.Node.Alarms).
func (a *api) alarms(ctx context.Context) (any, error) {
	as, err := a.n.Alarms(ctx)
	if err != nil {
		return nil, err
	}
	out := alarmsResponse{Alarms: make([]alarm, 0, len(as))}
	for _, x := range as {
		out.Alarms = append(out.Alarms, alarm{Shard: x.Shard, Alarm: x.Kind, Members: x.Members})
	}
	return out, nil
}

type disarmRequest struct {
	Alarm string `json:"alarm"` // empty: every kind
}

// disarmAlarms clears the alarms of a kind, or every alarm
// (coord.Node.DisarmAlarms).
func (a *api) disarmAlarms(ctx context.Context, req *disarmRequest) (any, error) {
	var kinds []string
	if req.Alarm != "" {
		kinds = []string{req.Alarm}
	}
	if err := a.n.DisarmAlarms(ctx, kinds...); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type memberHash struct {
	Member string `json:"member"`
	ID     uint64 `json:"id,string"`
	Hash   string `json:"hash"` // hexadecimal: a uint64 does not fit a JSON number
}

type hashCheck struct {
	Shard    int          `json:"shard"`
	Revision int64        `json:"revision"`
	Hashes   []memberHash `json:"hashes"`
	Missing  []string     `json:"missing,omitempty"`
	Corrupt  []string     `json:"corrupt,omitempty"`
}

// checkHash runs an integrity check of every shard (coord.Node.CheckHash).
// A check that ran out of time is answered with what it holds, its voters
// that did not report in "missing".
func (a *api) checkHash(ctx context.Context, _ *struct{}) (any, error) {
	checks, err := a.n.CheckHash(ctx)
	if err != nil && (checks == nil || !errors.Is(err, context.DeadlineExceeded)) {
		return nil, err
	}
	out := struct {
		Checks []hashCheck `json:"checks"`
	}{Checks: make([]hashCheck, 0, len(checks))}
	for _, c := range checks {
		hc := hashCheck{Shard: c.Shard, Revision: int64(c.Revision), Hashes: make([]memberHash, 0, len(c.Hashes)),
			Missing: c.Missing, Corrupt: c.Corrupt}
		for _, h := range c.Hashes {
			hc.Hashes = append(hc.Hashes, memberHash{Member: h.Member, ID: h.ReplicaID, Hash: strconv.FormatUint(h.Hash, 16)})
		}
		out.Checks = append(out.Checks, hc)
	}
	return out, nil
}
