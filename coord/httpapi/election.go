package httpapi

import (
	"context"
	"net/http"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/election"
)

type campaignRequest struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
	TTLMs int64  `json:"ttl_ms"`
}

type proclaimRequest struct {
	Lease int64  `json:"lease"`
	Value []byte `json:"value"`
}

type electionRequest struct {
	Name string `json:"name"`
}

type leaderLine struct {
	Leader *leaderInfo `json:"leader"`
}

type leaderInfo struct {
	Name  string `json:"name"`
	Key   []byte `json:"key"`
	Value []byte `json:"value"`
	Rev   int64  `json:"rev"` // the leader's fencing token: its key's create revision
	Lease int64  `json:"lease"`
}

// campaign campaigns on a session of its own and holds the leadership while
// the stream is open. Nothing is sent until elected.
func (a *api) campaign(w http.ResponseWriter, r *http.Request, req *campaignRequest) {
	ttl, err := millis("ttl_ms", req.TTLMs, defaultHeldTTL)
	if err == nil {
		err = checkName("name", req.Name)
	}
	if err != nil {
		writeCoordError(w, err)
		return
	}
	ctx, end := context.WithCancelCause(r.Context())
	defer end(nil)
	s, err := a.n.NewSession(ctx, coord.WithTTL(ttl))
	if err != nil {
		writeCoordError(w, err)
		return
	}
	e := election.New(s, req.Name)
	h := &holding{kind: kindElection, lease: s.Lease(), release: e.Resign, proclaim: e.Proclaim, end: end}
	defer a.closeHeld(h, s)
	value := req.Value
	if value == nil {
		value = []byte{}
	}
	if err := e.Campaign(ctx, value); err != nil {
		writeCoordError(w, err)
		return
	}
	done := e.Done()
	info := &leaderInfo{Name: req.Name, Key: []byte{}, Value: value, Rev: int64(e.Fence()), Lease: int64(s.Lease())}
	// An Election does not tell its own key; the leader read right after
	// winning is this candidate unless it has lost already (done then
	// closes and the stream says so).
	if l, err := e.Leader(ctx); err == nil && int64(l.Fence) == info.Rev {
		info.Key = []byte(l.Key)
	}
	a.addHolding(h)
	st := a.newStream(w, r)
	defer st.stop()
	holdStream(ctx, st, leaderLine{Leader: info}, done, e.Err, "the leadership was resigned through /v1/election/resign")
}

func (a *api) proclaim(ctx context.Context, req *proclaimRequest) (any, error) {
	if err := checkLease(req.Lease); err != nil {
		return nil, err
	}
	h, err := a.findHolding(coord.LeaseID(req.Lease), kindElection, false)
	if err != nil {
		return nil, err
	}
	value := req.Value
	if value == nil {
		value = []byte{}
	}
	if err := h.proclaim(ctx, value); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (a *api) resign(ctx context.Context, req *leaseRequest) (any, error) {
	return a.releaseHeld(ctx, req.Lease, kindElection)
}

func (a *api) leader(ctx context.Context, req *electionRequest) (any, error) {
	if err := checkName("name", req.Name); err != nil {
		return nil, err
	}
	l, err := election.Watcher(a.n, req.Name).Leader(ctx)
	if err != nil {
		return nil, err
	}
	return leaderLine{Leader: leaderInfoOf(req.Name, l)}, nil
}

// observe streams the election's leader: the current one (or null) first,
// then every change.
func (a *api) observe(w http.ResponseWriter, r *http.Request, req *electionRequest) {
	if err := checkName("name", req.Name); err != nil {
		writeCoordError(w, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	obs := election.Watcher(a.n, req.Name).Observe(ctx)
	st := a.newStream(w, r)
	defer st.stop()
	if st.start() != nil {
		return
	}
	pump(ctx, st, obs, func(o election.Observation) bool {
		return st.send(leaderLine{Leader: leaderInfoOf(req.Name, o.Leader)}) == nil
	})
}

// leaderInfoOf describes l, nil for no leader.
func leaderInfoOf(name string, l *election.Leader) *leaderInfo {
	if l == nil {
		return nil
	}
	info := &leaderInfo{Name: name, Key: []byte(l.Key), Value: l.Value, Rev: int64(l.Fence), Lease: int64(l.Lease)}
	if info.Value == nil {
		info.Value = []byte{}
	}
	return info
}
