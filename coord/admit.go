package coord

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Observers of a fleet join without an operator: a new observer asks one of
// its JoinSeeds (other members' AdminAddress) to admit it. The admitting
// member adds it to every shard as a non-voting member under a fresh,
// random Raft ID and answers with that ID and the cluster's members,
// replacing an unreachable observer whose name or address the newcomer
// takes. The leader of shard 0 removes an observer that stays unreachable
// for ObserverGracePeriod (reaper below), so observers that die or leave do
// not accumulate.

const admitPath = "/coordkit/v1/admit"

// maxAdmitBody bounds an admission request's body.
const maxAdmitBody = 64 << 10

type admitRequest struct {
	Token     string `json:"token"`
	Name      string `json:"name"`
	Address   string `json:"address"`
	ReplicaID string `json:"replica_id,omitempty"` // a restarting observer's ID
}

type admitResponse struct {
	ReplicaID string            `json:"replica_id"`
	Shards    int               `json:"shards"`
	Members   map[string]string `json:"members"` // name -> RaftAddress
	Error     string            `json:"error,omitempty"`
}

// tlsFiles builds the crypto/tls settings of c.TLS for the admission
// service: a server that requires a client certificate from the CA, and a
// client that presents this member's certificate.
func (t *TLSConfig) tlsFiles() (server, client *tls.Config, err error) {
	ca, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client, nil
}

// serveAdmissions starts the admission service on Config.AdminAddress.
func (n *Node) serveAdmissions() error {
	l, err := net.Listen("tcp", n.cfg.AdminAddress)
	if err != nil {
		return fmt.Errorf("coord: AdminAddress: %w", err)
	}
	if n.cfg.TLS != nil {
		server, _, err := n.cfg.TLS.tlsFiles()
		if err != nil {
			l.Close()
			return configError("TLS", "%v", err)
		}
		l = tls.NewListener(l, server)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(admitPath, n.handleAdmit)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 2 * n.cfg.RequestTimeout, MaxHeaderBytes: 16 << 10}
	n.admin = srv
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		srv.Serve(l)
	}()
	return nil
}

func (n *Node) handleAdmit(w http.ResponseWriter, r *http.Request) {
	reply := func(code int, resp admitResponse) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(resp)
	}
	if r.Method != http.MethodPost {
		reply(http.StatusMethodNotAllowed, admitResponse{Error: "POST only"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAdmitBody+1))
	if err != nil || len(body) > maxAdmitBody {
		reply(http.StatusBadRequest, admitResponse{Error: fmt.Sprintf("bad request: unreadable or over %d bytes", maxAdmitBody)})
		return
	}
	if err := checkAdmitProof(n.key, body, r.Header.Get(admitProofHeader), time.Now()); err != nil {
		n.log.Warn("refused an admission request", "remote", r.RemoteAddr, "err", err)
		reply(http.StatusUnauthorized, admitResponse{Error: err.Error()})
		return
	}
	var req admitRequest
	if err := json.Unmarshal(body, &req); err != nil {
		reply(http.StatusBadRequest, admitResponse{Error: "bad request: " + err.Error()})
		return
	}
	if req.Token != n.cfg.ClusterToken {
		reply(http.StatusForbidden, admitResponse{Error: "cluster token does not match"})
		return
	}
	if req.Name == "" || validAddress(req.Address) != nil {
		reply(http.StatusBadRequest, admitResponse{Error: "name and a host:port address are required"})
		return
	}
	id, err := n.admit(r.Context(), req)
	if err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, ErrMemberExists) {
			code = http.StatusConflict
		}
		reply(code, admitResponse{Error: err.Error()})
		return
	}
	members := map[string]string{}
	if m, err := n.shards[0].Membership(r.Context()); err == nil {
		for _, mb := range n.describe(m) {
			members[mb.Name] = mb.Address
		}
	}
	reply(http.StatusOK, admitResponse{ReplicaID: strconv.FormatUint(id, 10), Shards: len(n.shards), Members: members})
}

// admit adds the observer req describes, or confirms a restarting one.
//
// Admissions through this member run one at a time: each is a membership
// change of every shard, which dragonboat takes one at a time, so a storm
// of joiners would otherwise retry against each other until their
// requests timed out. A request waits its turn for up to RequestTimeout
// (then it is refused as busy, and the joiner asks again), and then has
// RequestTimeout for its own change.
func (n *Node) admit(ctx context.Context, req admitRequest) (uint64, error) {
	wait, cancelWait := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	select {
	case n.admitting <- struct{}{}:
		cancelWait()
	case <-wait.Done():
		cancelWait()
		return 0, fmt.Errorf("coord: busy admitting other members; ask again: %w", context.DeadlineExceeded)
	}
	defer func() { <-n.admitting }()
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	_, ms, err := n.current(ctx)
	if err != nil {
		return 0, err
	}
	prev, _ := strconv.ParseUint(req.ReplicaID, 10, 64)
	var stale []Member
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
		if m.Voter || !(m.Name == req.Name && m.Address == req.Address) && n.reachable(ctx, m.Address) {
			return 0, fmt.Errorf("%w: name %q or address %s is member %q", ErrMemberExists, req.Name, req.Address, m.Name)
		}
		stale = append(stale, m)
	}
	for _, m := range stale {
		if err := n.removeMember(ctx, m, ms, memberConfig{}); err != nil {
			return 0, err
		}
		n.log.Info("replaced an observer by a newcomer with its name or address", "name", m.Name, "address", m.Address,
			"new_name", req.Name, "new_address", req.Address)
	}
	id := randomReplicaID()
	if _, err := n.addMember(ctx, req.Name, req.Address, id, memberConfig{observer: true, reuseName: true}); err != nil {
		return 0, err
	}
	n.log.Info("admitted observer", "name", req.Name, "address", req.Address, "replica_id", id)
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

// askSeeds asks the JoinSeeds in turn to admit this member, and returns the
// first answer. prev is the ID this member had (0 when new). With retry, a
// round in which no seed answered (none reachable, no leader, busy) is
// followed by another after a backoff, until ctx ends: an instance started
// with its cluster, or in a storm of others, joins as soon as it can,
// without an operator. A refusal (the name or address taken, a wrong token
// or secret) ends it at once.
func askSeeds(ctx context.Context, c *Config, key []byte, prev uint64, retry bool) (*admitResponse, error) {
	for round := 0; ; round++ {
		ar, err, final := askSeedsOnce(ctx, c, key, prev)
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

// askSeedsOnce asks each seed once; final reports a refusal that asking
// again will not change.
func askSeedsOnce(ctx context.Context, c *Config, key []byte, prev uint64) (_ *admitResponse, _ error, final bool) {
	client := &http.Client{Timeout: 2 * c.RequestTimeout}
	scheme := "http"
	if c.TLS != nil {
		_, cl, err := c.TLS.tlsFiles()
		if err != nil {
			return nil, configError("TLS", "%v", err), true
		}
		client.Transport = &http.Transport{TLSClientConfig: cl}
		scheme = "https"
	}
	if ctx.Err() != nil {
		return nil, ctx.Err(), true
	}
	defer client.CloseIdleConnections()
	req := admitRequest{Token: c.ClusterToken, Name: c.Name, Address: c.RaftAddress}
	if prev != 0 {
		req.ReplicaID = strconv.FormatUint(prev, 10)
	}
	body, _ := json.Marshal(req)
	var errs []error
	for _, seed := range c.JoinSeeds {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, scheme+"://"+seed+admitPath, bytes.NewReader(body))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", seed, err))
			continue
		}
		hr.Header.Set(admitProofHeader, admitProof(key, body, time.Now()))
		resp, err := client.Do(hr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", seed, err))
			continue
		}
		var ar admitResponse
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

// reap runs on every member and acts while it leads shard 0: an observer
// from which this member received nothing for longer than
// ObserverGracePeriod is removed. Voters are never removed automatically.
// A new leader gives every observer a whole grace period from the moment
// it took over.
//
// Every member a leader leads answers its heartbeats several times an
// election timeout, so silence is read from the transport's record of the
// last message from each peer: a tick costs one membership read and no
// network traffic to the observers, whatever the fleet's size.
func (n *Node) reap() {
	defer n.wg.Done()
	grace := n.cfg.ObserverGracePeriod
	every := min(max(grace/4, 100*time.Millisecond), 5*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	since := map[uint64]time.Time{} // observer ID -> when this leader began to watch it
	for {
		select {
		case <-n.host.Done():
			return
		case <-t.C:
		}
		if !n.shards[0].Leads() {
			clear(since)
			continue
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(n.host.Context(), n.cfg.RequestTimeout)
		if m, err := n.shards[0].Membership(ctx); err == nil {
			n.reapOnce(ctx, n.describe(m), since, grace, start)
		}
		cancel()
		n.reapTimes.Observe(time.Since(start))
	}
}

// reapOnce removes the observers in ms silent for longer than grace at now.
func (n *Node) reapOnce(ctx context.Context, ms []Member, since map[uint64]time.Time, grace time.Duration, now time.Time) {
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
		if at, ok := n.host.Heard(m.Address); ok && at.After(last) {
			last = at
		}
		if now.Sub(last) <= grace {
			continue
		}
		if err := n.removeMember(ctx, m, ms, memberConfig{}); err != nil {
			n.log.Warn("removing a silent observer failed", "name", m.Name, "err", err)
			continue
		}
		n.log.Info("removed an observer silent for longer than the grace period", "name", m.Name, "grace", grace,
			"silent_for", now.Sub(last).Round(time.Millisecond))
		delete(since, m.ID)
	}
	for id := range since {
		if !seen[id] {
			delete(since, id)
		}
	}
}

// rejoin asks the seeds whether this restarting observer is still a member.
// It returns meta unchanged when it is (or when no seed answers), and nil
// after discarding the Raft state of an observer the cluster removed, so
// that Open joins it afresh.
func rejoin(ctx context.Context, c *Config, key []byte, meta *memberMeta) (*memberMeta, error) {
	c.Name = meta.Name
	c.RaftAddress = meta.RaftAddress
	c.ClusterToken = meta.ClusterToken
	ar, err := askSeeds(ctx, c, key, meta.ReplicaID, false)
	if err != nil {
		c.Logger.Warn("no seed confirmed this observer's membership; restarting as it was", "err", err)
		return meta, nil
	}
	if ar.ReplicaID == strconv.FormatUint(meta.ReplicaID, 10) {
		return meta, nil
	}
	// The seed admitted this member under a new ID: the old one was removed.
	// Forget the old replica and start from nothing as the new one.
	c.Logger.Info("this observer was removed from the cluster while away; joining afresh", "old_replica_id", meta.ReplicaID)
	if err := c.fs().RemoveAll(filepath.Join(c.DataDir, "raft")); err != nil {
		return nil, fmt.Errorf("coord: DataDir: %w", err)
	}
	if err := c.fs().Remove(filepath.Join(c.DataDir, metaFile)); err != nil {
		return nil, fmt.Errorf("coord: DataDir: %w", err)
	}
	return nil, nil
}
