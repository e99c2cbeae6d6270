// Package admit lets observers of a fleet join without an operator, and
// leave without one.
//
// A new observer asks one of
// its JoinSeeds (other members' AdminAddress) to admit it. The admitting
// member adds it to every shard as a non-voting member under a fresh,
// random Raft ID and answers with that ID and the cluster's members,
// replacing an unreachable observer whose name or address the newcomer
// takes. The leader of shard 0 removes an observer that stays unreachable
// for ObserverGracePeriod (Reap), so observers that die or leave do
// not accumulate.

// Every request carries a proof that its sender holds the cluster key (an
// HMAC of the body and the sender's clock), checked before anything else.
package admit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/members"
	"github.com/coordkit/coordkit/coord/internal/meta"
	"github.com/coordkit/coordkit/coord/internal/metric"
	"github.com/coordkit/coordkit/coord/internal/raftnode"
)

const admitPath = "/coordkit/v1/admit"

// maxAdmitBody bounds an admission request's body.
const maxAdmitBody = 64 << 10

type admitRequest struct {
	Token     string `json:"token"`
	Name      string `json:"name"`
	Address   string `json:"address"`
	ReplicaID string `json:"replica_id,omitempty"` // a restarting observer's ID
}

// Response is a seed's answer to an admission request.
type Response struct {
	ReplicaID string            `json:"replica_id"`
	Shards    int               `json:"shards"`
	Members   map[string]string `json:"members"` // name -> RaftAddress
	Error     string            `json:"error,omitempty"`
}

// Server is a member's admission service.
type Server struct {
	cfg       ServerConfig
	srv       *http.Server
	l         net.Listener
	admitting chan struct{} // held by the admission under way (admit)
}

// ServerConfig is what the admission service needs.
type ServerConfig struct {
	Address string             // Config.AdminAddress
	TLS     *raftnode.TLSFiles // nil: plaintext
	// Key is the cluster key requests must prove they hold; Token the
	// cluster token they must name.
	Key            []byte
	Token          string
	RequestTimeout time.Duration
	Members        *members.Manager
	Shards         int
	Logger         *slog.Logger
}

// Listen opens the admission service's port; Serve then answers on it.
// Errors name AdminAddress, or TLS (ErrInvalidConfig) when its files cannot
// be loaded.
func Listen(cfg ServerConfig) (*Server, error) {
	l, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("coord: AdminAddress: %w", err)
	}
	if cfg.TLS != nil {
		server, _, err := cfg.TLS.Configs()
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("%w: TLS: %v", errdefs.ErrInvalidConfig, err)
		}
		l = tls.NewListener(l, server)
	}
	s := &Server{cfg: cfg, l: l, admitting: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc(admitPath, s.handle)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 2 * cfg.RequestTimeout, MaxHeaderBytes: 16 << 10}
	return s, nil
}

// Serve answers admission requests until Close; it blocks.
func (s *Server) Serve() { s.srv.Serve(s.l) }

// Close stops the service at once; Serve returns.
func (s *Server) Close() { s.srv.Close() }

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	reply := func(code int, resp Response) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(resp)
	}
	if r.Method != http.MethodPost {
		reply(http.StatusMethodNotAllowed, Response{Error: "POST only"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAdmitBody+1))
	if err != nil || len(body) > maxAdmitBody {
		reply(http.StatusBadRequest, Response{Error: fmt.Sprintf("bad request: unreadable or over %d bytes", maxAdmitBody)})
		return
	}
	if err := checkProof(s.cfg.Key, body, r.Header.Get(admitProofHeader), time.Now()); err != nil {
		s.cfg.Logger.Warn("refused an admission request", "remote", r.RemoteAddr, "err", err)
		reply(http.StatusUnauthorized, Response{Error: err.Error()})
		return
	}
	var req admitRequest
	if err := json.Unmarshal(body, &req); err != nil {
		reply(http.StatusBadRequest, Response{Error: "bad request: " + err.Error()})
		return
	}
	if req.Token != s.cfg.Token {
		reply(http.StatusForbidden, Response{Error: "cluster token does not match"})
		return
	}
	if req.Name == "" || members.ValidAddress(req.Address) != nil {
		reply(http.StatusBadRequest, Response{Error: "name and a host:port address are required"})
		return
	}
	id, err := s.admit(r.Context(), req)
	if err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, errdefs.ErrMemberExists) {
			code = http.StatusConflict
		}
		reply(code, Response{Error: err.Error()})
		return
	}
	all := map[string]string{}
	if _, ms, err := s.cfg.Members.Current(r.Context()); err == nil {
		for _, mb := range ms {
			all[mb.Name] = mb.Address
		}
	}
	reply(http.StatusOK, Response{ReplicaID: strconv.FormatUint(id, 10), Shards: s.cfg.Shards, Members: all})
}

// admit adds the observer req describes, or confirms a restarting one.
//
// Admissions through this member run one at a time: each is a membership
// change of every shard, which dragonboat takes one at a time, so a storm
// of joiners would otherwise retry against each other until their
// requests timed out. A request waits its turn for up to RequestTimeout
// (then it is refused as busy, and the joiner asks again), and then has
// RequestTimeout for its own change.
func (s *Server) admit(ctx context.Context, req admitRequest) (uint64, error) {
	wait, cancelWait := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	select {
	case s.admitting <- struct{}{}:
		cancelWait()
	case <-wait.Done():
		cancelWait()
		return 0, fmt.Errorf("coord: busy admitting other members; ask again: %w", context.DeadlineExceeded)
	}
	defer func() { <-s.admitting }()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	_, ms, err := s.cfg.Members.Current(ctx)
	if err != nil {
		return 0, err
	}
	prev, _ := strconv.ParseUint(req.ReplicaID, 10, 64)
	var stale []members.Member
	for _, m := range ms {
		if m.Name != req.Name && m.Address != req.Address {
			continue
		}
		if m.ID == prev && m.Name == req.Name && m.Address == req.Address && !m.Voter {
			return prev, nil // a restart: still a member
		}
		// An observer whose name or address the newcomer takes is replaced
		// when it is an earlier incarnation (same name and address: it lost
		// its DataDir, or was started afresh), or when it is unreachable
		// (an instance rescheduled under its old name, or a new one given
		// a dead one's address): the reaper would remove it anyway. A
		// voter, or a live observer, keeps its name and address. Whether it
		// lives is asked by a connection, not by when it was last heard
		// from: an instance rescheduled at once must not wait for the
		// silence of the one it replaces.
		if m.Voter || !(m.Name == req.Name && m.Address == req.Address) && s.cfg.Members.Reachable(ctx, m.Address) {
			return 0, fmt.Errorf("%w: name %q or address %s is member %q", errdefs.ErrMemberExists, req.Name, req.Address, m.Name)
		}
		stale = append(stale, m)
	}
	for _, m := range stale {
		if err := s.cfg.Members.Remove(ctx, m, ms, members.Options{}); err != nil {
			return 0, err
		}
		s.cfg.Logger.Info("replaced an observer by a newcomer with its name or address", "name", m.Name, "address", m.Address,
			"new_name", req.Name, "new_address", req.Address)
	}
	id := randomReplicaID()
	if _, err := s.cfg.Members.Add(ctx, req.Name, req.Address, id, members.Options{Observer: true, ReuseName: true}); err != nil {
		return 0, err
	}
	s.cfg.Logger.Info("admitted observer", "name", req.Name, "address", req.Address, "replica_id", id)
	return id, nil
}

// randomReplicaID returns an ID no other member has: founders use 1..N and
// members added by AddMember use hashes in [2^32, 2^63); these use [2^63,
// 2^64), random, so an admitted observer never gets an ID used before.
func randomReplicaID() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("coord: crypto/rand failed: %v", err))
	}
	return binary.BigEndian.Uint64(b[:]) | 1<<63
}

// ClientConfig is what a member asking to be admitted needs.
type ClientConfig struct {
	Seeds []string // Config.JoinSeeds: host:port, or srv:NAME
	// Resolver looks up srv: seeds; nil for net.DefaultResolver.
	Resolver *net.Resolver
	TLS      *raftnode.TLSFiles
	// Token, Name and Address are the cluster token, and this member's
	// name and RaftAddress.
	Token, Name, Address string
	RequestTimeout       time.Duration
	Logger               *slog.Logger
	// DataDir, on FS, is discarded by Rejoin for an observer the cluster
	// removed.
	DataDir string
	FS      vfs.FS
}

// Ask asks the JoinSeeds in turn to admit this member, and returns the
// first answer. prev is the ID this member had (0 when new). With retry, a
// round in which no seed answered (none reachable, no leader, busy) is
// followed by another after a backoff, until ctx ends: an instance started
// with its cluster, or in a storm of others, joins as soon as it can,
// without an operator. A refusal (the name or address taken, a wrong token
// or secret) ends it at once.
func Ask(ctx context.Context, c *ClientConfig, key []byte, prev uint64, retry bool) (*Response, error) {
	for round := 0; ; round++ {
		ar, err, final := askOnce(ctx, c, key, prev)
		if err == nil || final || !retry {
			return ar, err
		}
		if round&(round+1) == 0 { // rounds 0, 1, 3, 7, ...: a wait that lasts is logged, sparsely
			c.Logger.Warn("no seed admitted this member yet; asking again", "member", c.Name, "round", round+1, "err", err)
		}
		d := min(100*time.Millisecond<<min(round, 5), 2*time.Second)
		d += mrand.N(d/2) - d/4 // ±25%, so a storm does not come back in step
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (and then: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// askOnce asks each seed once; final reports a refusal that asking
// again will not change.
func askOnce(ctx context.Context, c *ClientConfig, key []byte, prev uint64) (_ *Response, _ error, final bool) {
	client := &http.Client{Timeout: 2 * c.RequestTimeout}
	scheme := "http"
	if c.TLS != nil {
		_, cl, err := c.TLS.Configs()
		if err != nil {
			return nil, fmt.Errorf("%w: TLS: %v", errdefs.ErrInvalidConfig, err), true
		}
		client.Transport = &http.Transport{TLSClientConfig: cl}
		scheme = "https"
	}
	if ctx.Err() != nil {
		return nil, ctx.Err(), true
	}
	defer client.CloseIdleConnections()
	req := admitRequest{Token: c.Token, Name: c.Name, Address: c.Address}
	if prev != 0 {
		req.ReplicaID = strconv.FormatUint(prev, 10)
	}
	body, _ := json.Marshal(req)
	seeds, errs := c.seedAddresses(ctx)
	for _, seed := range seeds {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, scheme+"://"+seed+admitPath, bytes.NewReader(body))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", seed, err))
			continue
		}
		hr.Header.Set(admitProofHeader, proof(key, body, time.Now()))
		resp, err := client.Do(hr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", seed, err))
			continue
		}
		var ar Response
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ar)
		resp.Body.Close()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: bad answer: %w", seed, err))
		case resp.StatusCode != http.StatusOK:
			errs = append(errs, fmt.Errorf("%s: %s", seed, ar.Error))
			if resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
				return nil, fmt.Errorf("coord: admission refused: %w", errors.Join(errs...)), true
			}
		default:
			return &ar, nil, false
		}
	}
	return nil, fmt.Errorf("coord: no seed admitted this member: %w", errors.Join(errs...)), false
}

// SRVPrefix marks a seed that is a DNS SRV record name (Config.JoinSeeds).
const SRVPrefix = "srv:"

// seedAddresses is the seeds to ask, in order: host:port seeds as given,
// and for each srv: seed, its record's targets as DNS orders them (by
// priority, then at random by weight), looked up now, so that every round
// sees the records as they are. A failed lookup is an error of its seed.
func (c *ClientConfig) seedAddresses(ctx context.Context) ([]string, []error) {
	var out []string
	var errs []error
	for _, seed := range c.Seeds {
		name, ok := strings.CutPrefix(seed, SRVPrefix)
		if !ok {
			out = append(out, seed)
			continue
		}
		r := c.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		_, srvs, err := r.LookupSRV(ctx, "", "", name)
		if err == nil && len(srvs) == 0 {
			err = errors.New("no SRV records")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", seed, err))
			continue
		}
		for _, srv := range srvs {
			out = append(out, net.JoinHostPort(strings.TrimSuffix(srv.Target, "."), strconv.Itoa(int(srv.Port))))
		}
	}
	return out, errs
}

// ReapConfig is what Reap needs.
type ReapConfig struct {
	// Grace is Config.ObserverGracePeriod.
	Grace          time.Duration
	RequestTimeout time.Duration
	// Shard0 is this member's replica of shard 0, whose leader reaps.
	Shard0  *raftnode.Shard
	Members *members.Manager
	// Heard returns when the peer at an address was last heard from.
	Heard  func(addr string) (time.Time, bool)
	Times  *metric.Histogram // each pass's duration
	Logger *slog.Logger
}

// Reap runs on every member, until ctx ends, and acts while it leads shard 0: an observer
// from which this member received nothing for longer than
// ObserverGracePeriod is removed. Voters are never removed automatically.
// A new leader gives every observer a whole grace period from the moment
// it took over.
//
// Every member a leader leads answers its heartbeats several times an
// election timeout, so silence is read from the transport's record of the
// last message from each peer: a tick costs one membership read and no
// network traffic to the observers, whatever the fleet's size.
func Reap(ctx context.Context, r ReapConfig) {
	grace := r.Grace
	every := min(max(grace/4, 100*time.Millisecond), 5*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	since := map[uint64]time.Time{} // observer ID -> when this leader began to watch it
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !r.Shard0.Leads() {
			clear(since)
			continue
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, r.RequestTimeout)
		if m, err := r.Shard0.Membership(pctx); err == nil {
			r.once(pctx, r.Members.Describe(m), since, grace, start)
		}
		cancel()
		r.Times.Observe(time.Since(start))
	}
}

// once removes the observers in ms silent for longer than grace at now.
func (r *ReapConfig) once(ctx context.Context, ms []members.Member, since map[uint64]time.Time, grace time.Duration, now time.Time) {
	seen := map[uint64]bool{}
	for _, m := range ms {
		if m.Voter {
			continue
		}
		seen[m.ID] = true
		last, ok := since[m.ID]
		if !ok {
			since[m.ID], last = now, now
		}
		if at, ok := r.Heard(m.Address); ok && at.After(last) {
			last = at
		}
		if now.Sub(last) <= grace {
			continue
		}
		if err := r.Members.Remove(ctx, m, ms, members.Options{}); err != nil {
			r.Logger.Warn("removing a silent observer failed", "name", m.Name, "err", err)
			continue
		}
		r.Logger.Info("removed an observer silent for longer than the grace period", "name", m.Name, "grace", grace,
			"silent_for", now.Sub(last).Round(time.Millisecond))
		delete(since, m.ID)
	}
	for id := range since {
		if !seen[id] {
			delete(since, id)
		}
	}
}

// Rejoin asks the seeds whether this restarting observer is still a member.
// It returns mf unchanged when it is (or when no seed answers), and nil
// after discarding the Raft state of an observer the cluster removed, so
// that Open joins it afresh.
func Rejoin(ctx context.Context, c ClientConfig, key []byte, mf *meta.Member) (*meta.Member, error) {
	c.Name = mf.Name
	c.Address = mf.RaftAddress
	c.Token = mf.ClusterToken
	ar, err := Ask(ctx, &c, key, mf.ReplicaID, false)
	if err != nil {
		c.Logger.Warn("no seed confirmed this observer's membership; restarting as it was", "err", err)
		return mf, nil
	}
	if ar.ReplicaID == strconv.FormatUint(mf.ReplicaID, 10) {
		return mf, nil
	}
	// The seed admitted this member under a new ID: the old one was removed.
	// Forget the old replica and start from nothing as the new one.
	c.Logger.Info("this observer was removed from the cluster while away; joining afresh", "old_replica_id", mf.ReplicaID)
	if err := c.FS.RemoveAll(filepath.Join(c.DataDir, "raft")); err != nil {
		return nil, fmt.Errorf("coord: DataDir: %w", err)
	}
	if err := c.FS.Remove(filepath.Join(c.DataDir, meta.FileName)); err != nil {
		return nil, fmt.Errorf("coord: DataDir: %w", err)
	}
	return nil, nil
}

// Admission requests carry a proof of the cluster key, so that a process
// that can reach AdminAddress but does not hold the secret (or, with TLS, a
// certificate) cannot admit itself: the header holds a Unix time and an
// HMAC of it with the request body. A proof is accepted within
// admitProofWindow of its time.
const (
	admitProofHeader = "Coordkit-Proof"
	admitProofWindow = time.Minute
)

func proof(key, body []byte, at time.Time) string {
	ts := strconv.FormatInt(at.Unix(), 10)
	return ts + "." + hex.EncodeToString(admitMAC(key, ts, body))
}

func admitMAC(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("coordkit admit\x00"))
	m.Write([]byte(ts))
	m.Write([]byte{0})
	m.Write(body)
	return m.Sum(nil)
}

// checkProof verifies a proof header against the body it came with.
func checkProof(key, body []byte, proof string, now time.Time) error {
	ts, mac, ok := strings.Cut(proof, ".")
	if !ok {
		return errors.New("no proof of the cluster secret")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("malformed proof")
	}
	got, err := hex.DecodeString(mac)
	if err != nil || !hmac.Equal(got, admitMAC(key, ts, body)) {
		return errors.New("proof does not match the cluster secret")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > admitProofWindow || d < -admitProofWindow {
		return fmt.Errorf("proof is %v old; clocks apart, or a replay", d.Round(time.Second))
	}
	return nil
}
