package robustness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/coordkit/coordkit/internal/proctest"
)

// The SIGKILL scenario runs members of cmd/coordkit as processes, drives
// them over the HTTP API (coord/httpapi) and kills them with SIGKILL while
// the traffic runs. Its history goes through the checks of the in-process
// scenarios.

const (
	// procRequest bounds one client request. It is shorter than a member's
	// request timeout (5 s), so a write stuck behind a killed leader is cut
	// off by the client and recorded as of unknown outcome.
	procRequest = 3 * time.Second
	// procWait bounds the wait for any one state: a member healthy, the
	// members settled, the history read.
	procWait = 30 * time.Second
	// procPoll is the interval of the polls for a state.
	procPoll = 50 * time.Millisecond
	// followFor bounds one watch stream of the follower.
	followFor = 2 * time.Second
)

// sigkillRun is one run of the SIGKILL scenario.
type sigkillRun struct {
	seed    int64
	traffic time.Duration // at least; the run also lasts until every kill is done
	kills   int
}

// TestMembersKilledWithSIGKILL is the SIGKILL scenario: see README.md.
func TestMembersKilledWithSIGKILL(t *testing.T) {
	runs := []sigkillRun{{seed: 31, traffic: 12 * time.Second, kills: 3}}
	if *long {
		runs = nil
		traffic := 3 * *duration
		for i := 0; i < max(1, *scenarios/10); i++ {
			runs = append(runs, sigkillRun{seed: *seed + int64(i), traffic: traffic, kills: max(3, int(traffic/(4*time.Second)))})
		}
	}
	began, at := time.Now(), commit() // the commit when the run starts: the one built
	bin := proctest.Build(t, t.TempDir(), "github.com/coordkit/coordkit/cmd/coordkit")[0]
	t.Logf("built cmd/coordkit in %v", time.Since(began).Round(time.Millisecond))
	var total Report
	for _, r := range runs {
		name := fmt.Sprintf("seed%d", r.seed)
		t.Run(name, func(t *testing.T) {
			began := time.Now()
			rep, ref, st := runSIGKILL(t, bin, r)
			t.Logf("sigkill-%s: %v: ops=%d unknown=%d serializable=%d kills=%d (leader %d) refused-while-down=%d failed-reads=%d linearizable=%s violations=%d",
				name, time.Since(began).Round(100*time.Millisecond), rep.Ops, rep.Unknown, rep.SerialReads, rep.FaultsInjected,
				st.leaderKills, st.refused.Load(), st.failedReads.Load(), rep.Linearizable, len(rep.Violations))
			total.Ops += rep.Ops
			total.Unknown += rep.Unknown
			total.FaultsInjected += rep.FaultsInjected
			total.Violations = append(total.Violations, rep.Violations...)
			if rep.Linearizable == porcupine.Unknown {
				t.Logf("sigkill-%s: linearizability check timed out (inconclusive)", name)
			}
			if len(rep.Violations) > 0 {
				path := visualize(t, "sigkill-"+name, rep)
				t.Errorf("sigkill-%s: %d violations, first: %s; history: %s", name, len(rep.Violations), rep.Violations[0], path)
				return
			}
			checkChecksAreLive(t, rep.history, ref, st.killedAt[0])
		})
	}
	t.Logf("SUMMARY runs=%d ops=%d unknown=%d kills=%d violations=%d",
		len(runs), total.Ops, total.Unknown, total.FaultsInjected, len(total.Violations))
	if *record != "" {
		profile := fmt.Sprintf("the short profile (seed %d)", runs[0].seed)
		if *long {
			profile = fmt.Sprintf("`-robustness.long -robustness.scenarios %d -robustness.duration %v -robustness.seed %d`", *scenarios, *duration, *seed)
		}
		appendRecord(t, fmt.Sprintf("\n### %s, SIGKILL\n\nAt commit `%s`, on %s (%d CPUs), with %s: runs of 3 member processes: %d, "+
			"%d operations, %d of unknown outcome, %d kills, %d violations. %.0f s in all.\n",
			time.Now().UTC().Format("2006-01-02 15:04 UTC"), at, runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), profile,
			len(runs), total.Ops, total.Unknown, total.FaultsInjected, len(total.Violations), time.Since(began).Seconds()))
	}
}

// sigkillStats counts what the history does not show.
type sigkillStats struct {
	leaderKills int
	killedAt    []int64      // on the recorder's clock
	refused     atomic.Int64 // requests refused when dialling: their member was down
	failedReads atomic.Int64
	mu          sync.Mutex
	unexpected  []string // 4xx answers: a bug of the test or an API change
}

func (s *sigkillStats) note(err error) {
	var ae *apiError
	if errors.As(err, &ae) && ae.status/100 == 4 {
		s.mu.Lock()
		s.unexpected = append(s.unexpected, err.Error())
		s.mu.Unlock()
	}
}

// runSIGKILL starts three member processes, runs traffic while killing and
// restarting them, and checks the history.
func runSIGKILL(t *testing.T, bin string, r sigkillRun) (*Report, *history, *sigkillStats) {
	rng := rand.New(rand.NewSource(r.seed))
	election := 750 + 50*rng.Intn(6) // ms, 750-1000: holds on a loaded 2-core machine
	ps := startMembers(t, bin, t.TempDir(), election)
	rep := &Report{}
	st := &sigkillStats{}
	rec := &recorder{start: time.Now()}

	// The committed history, read as it is written: from revision 1 it would
	// be compacted away past 10000 revisions (the members' default).
	follow := &follower{next: 1}
	fctx, fcancel := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		follow.run(fctx, ps)
	}()
	defer func() { fcancel(); <-followed }()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var seq atomic.Int64
	const perMember = 3
	for m := range ps {
		for k := 0; k < perMember; k++ {
			id := m*perMember + k
			wg.Add(1)
			go func() {
				defer wg.Done()
				procClient(ps[m].Client, m, id, rand.New(rand.NewSource(r.seed*1000+int64(id))), rec, &seq, st, stop)
			}()
		}
	}
	var once sync.Once
	stopTraffic := func() { once.Do(func() { close(stop); wg.Wait() }) }
	defer stopTraffic() // on t.Fatal below

	began := time.Now()
	for i := 0; i < r.kills; i++ {
		// Traffic runs on the whole cluster between kills.
		time.Sleep(time.Duration(500+rng.Intn(1000)) * time.Millisecond)
		target, what := ps[rng.Intn(len(ps))], "a member"
		if i%2 == 0 { // every other kill hits the leader: writes wait for an election
			target, what = shard0Leader(t, ps), "the leader"
			st.leaderKills++
		}
		killed := time.Now()
		st.killedAt = append(st.killedAt, rec.now())
		target.Kill()
		rep.FaultsInjected++
		// Down for a while: the others go on without it, it must catch up.
		time.Sleep(time.Duration(300+rng.Intn(1200)) * time.Millisecond)
		restarted := time.Now()
		target.Start(t)
		target.waitHealthy(t)
		t.Logf("%5.1fs SIGKILL %s (%s), down %v, healthy %v after its restart", killed.Sub(began).Seconds(), target.Name, what,
			restarted.Sub(killed).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	}
	// Traffic after the last restart, up to the run's duration.
	time.Sleep(max(r.traffic-time.Since(began), time.Second))
	stopTraffic()
	t.Logf("%5.1fs traffic stopped", time.Since(began).Seconds())
	if len(st.unexpected) > 0 {
		t.Errorf("%d unexpected 4xx answers, first: %s", len(st.unexpected), st.unexpected[0])
	}

	final := settleProcs(t, ps, rep)
	ref := follow.history(t, rep, final)
	t.Logf("%5.1fs settled at revision %d; the history's %d events read over %d watch streams",
		time.Since(began).Seconds(), final, len(ref.events), follow.streams.Load())
	rep.Ops = len(rec.ops)
	rep.SerialReads = len(rec.serial)
	rep.history = finishHistory(rec.ops, rep)
	checkRevisions(rep, rep.history)
	checkDurability(rep, rep.history, ref)
	checkSerial(rep, rec.serial, ref)
	checkFinalState(t, rep, ps, ref)
	res, info := porcupine.CheckOperationsVerbose(kvModel(), rep.history, 60*time.Second)
	rep.Linearizable, rep.info = res, info
	if res == porcupine.Illegal {
		rep.violate("history is not linearizable")
	}
	return rep, ref, st
}

// procClient sends random requests to the member serving the HTTP API at
// addr until stop closes: put, linearizable get, serializable get, delete,
// with unique values. It has its own connections.
func procClient(addr string, m, id int, rng *rand.Rand, rec *recorder, seq *atomic.Int64, st *sigkillStats, stop chan struct{}) {
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	for {
		select {
		case <-stop:
			return
		default:
		}
		key := keys[rng.Intn(len(keys))]
		value := fmt.Sprintf("v%d", seq.Add(1))
		ctx, cancel := context.WithTimeout(context.Background(), procRequest)
		call := rec.now()
		var err error
		switch p := rng.Intn(100); {
		case p < 35: // put
			var a struct{ Header apiHeader }
			err = callAPI(ctx, hc, addr, "/v1/kv/put", map[string]any{"key": []byte(key), "value": []byte(value)}, &a)
			if out, ok := httpWriteOutcome(err); ok {
				if err == nil {
					out.Rev = a.Header.Revision
				}
				rec.add(id, input{Kind: opPut, Key: key, Value: value}, call, out)
			}
		case p < 80: // linearizable get, serializable get
			serializable := p >= 65
			var a rangeAnswer
			err = callAPI(ctx, hc, addr, "/v1/kv/range", map[string]any{"key": []byte(key), "serializable": serializable}, &a)
			switch {
			case err != nil:
				st.failedReads.Add(1)
			case serializable:
				sr := serialRead{member: m, call: call, ret: rec.now(), key: key, rev: a.Header.Revision}
				if len(a.KVs) == 1 {
					sr.found, sr.value, sr.modRev = true, string(a.KVs[0].Value), a.KVs[0].ModRevision
				}
				rec.mu.Lock()
				rec.serial = append(rec.serial, sr)
				rec.mu.Unlock()
			default:
				out := output{Rev: a.Header.Revision}
				if len(a.KVs) == 1 {
					out.Found, out.Value, out.ModRev = true, string(a.KVs[0].Value), a.KVs[0].ModRevision
				}
				rec.add(id, input{Kind: opGet, Key: key}, call, out)
			}
		default: // delete
			var a struct {
				Header  apiHeader
				Deleted int64
			}
			err = callAPI(ctx, hc, addr, "/v1/kv/deleterange", map[string]any{"key": []byte(key)}, &a)
			if out, ok := httpWriteOutcome(err); ok {
				if err == nil {
					out.Rev, out.Deleted = a.Header.Revision, a.Deleted
				}
				rec.add(id, input{Kind: opDelete, Key: key}, call, out)
			}
		}
		cancel()
		st.note(err)
		if errors.Is(err, syscall.ECONNREFUSED) {
			st.refused.Add(1)
			time.Sleep(20 * time.Millisecond) // member down: pace, do not spin
		}
	}
}

// httpWriteOutcome is writeOutcome for a write sent over the HTTP API:
// recorded or not (it certainly did not happen), and if recorded whether its
// outcome is known. Only what cannot have been applied is left out.
func httpWriteOutcome(err error) (output, bool) {
	var ae *apiError
	switch {
	case err == nil:
		return output{}, true
	case errors.Is(err, syscall.ECONNREFUSED):
		return output{}, false // never sent: the member is down
	case !errors.As(err, &ae):
		return output{Unknown: true}, true // cut off or timed out after it was sent
	case strings.Contains(ae.message, "outcome unknown"):
		return output{Unknown: true}, true
	case ae.status/100 == 4:
		return output{}, false // refused
	case ae.code == "no_quorum":
		return output{}, false // coord.ErrNoLeader: dropped before it entered the log
	}
	return output{Unknown: true}, true // 504, 500, 503 unavailable
}

// HTTP API client.

type apiHeader struct {
	Revision int64 `json:"revision"`
}

type apiKV struct {
	Key         []byte `json:"key"`
	Value       []byte `json:"value"`
	ModRevision int64  `json:"mod_revision"`
}

type rangeAnswer struct {
	Header apiHeader `json:"header"`
	KVs    []apiKV   `json:"kvs"`
}

// apiError is an answer other than 200.
type apiError struct {
	status        int
	code, message string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d %s: %s", e.status, e.code, e.message) }

// callAPI sends one request (a POST with body, or a GET for a nil body) and
// decodes a 200 answer into out. Other answers are *apiError; transport
// errors are returned as they are.
func callAPI(ctx context.Context, hc *http.Client, addr, path string, body, out any) error {
	method := http.MethodGet
	var rd io.Reader // a nil interface, not a nil *bytes.Reader, for no body
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		method, rd = http.MethodPost, bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, rd)
	if err != nil {
		return err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error  struct{ Code, Message string }
			Reason string // GET /health
		}
		json.NewDecoder(resp.Body).Decode(&e)
		return &apiError{status: resp.StatusCode, code: e.Error.Code, message: e.Error.Message + e.Reason}
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Member processes.

// proc is one member process. Its stdout and stderr are appended to its
// log across restarts.
type proc struct {
	*proctest.Member
	replicaID string
	hc        http.Client // the test's own calls
}

// startMembers starts three members founding a cluster and waits until each
// is healthy. They are killed when the test ends; if it failed, their logs
// are kept under results/.
func startMembers(t *testing.T, bin, dir string, electionMS int) []*proc {
	var ps []*proc
	for _, m := range proctest.Founders(t, bin, dir, "sigkill", 3, "--heartbeat-interval", "50", "--election-timeout", fmt.Sprint(electionMS)) {
		ps = append(ps, &proc{Member: m})
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range ps {
				p.keepLog(t)
			}
		}
	})
	for _, p := range ps {
		p.Start(t)
	}
	for _, p := range ps {
		p.waitHealthy(t)
		var s statusAnswer
		p.Eventually(t, procWait, procPoll, "status", func() error { return p.get("/v1/status", &s) })
		p.replicaID = s.ReplicaID
	}
	return ps
}

// get makes one GET of the HTTP API.
func (p *proc) get(path string, out any) error { return p.post(path, nil, out) }

// post makes one POST of the HTTP API (a GET for a nil body).
func (p *proc) post(path string, body, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), procRequest)
	defer cancel()
	return callAPI(ctx, &p.hc, p.Client, path, body, out)
}

// waitHealthy polls GET /health until it answers 200: every shard has a
// leader and a linearizable read on this member succeeds.
func (p *proc) waitHealthy(t *testing.T) {
	t.Helper()
	p.Eventually(t, procWait, procPoll, "healthy", func() error { return p.get("/health", &struct{}{}) })
}

type statusAnswer struct {
	ReplicaID string `json:"replica_id"`
	Shards    []struct {
		Shard    int    `json:"shard"`
		Leader   string `json:"leader"`
		Revision int64  `json:"revision"`
	} `json:"shards"`
}

func (s *statusAnswer) shard0() (leader string, rev int64, err error) {
	for _, sh := range s.Shards {
		if sh.Shard == 0 {
			return sh.Leader, sh.Revision, nil
		}
	}
	return "", 0, fmt.Errorf("no shard 0 in the status")
}

// shard0Leader returns the member leading shard 0, as the first member to
// answer sees it.
func shard0Leader(t *testing.T, ps []*proc) *proc {
	t.Helper()
	var leader *proc
	ps[0].Eventually(t, procWait, procPoll, "learn the leader of shard 0", func() error {
		var lastErr error
		for _, p := range ps {
			var s statusAnswer
			if lastErr = p.get("/v1/status", &s); lastErr != nil {
				continue
			}
			id, _, err := s.shard0()
			if err != nil {
				return err
			}
			for _, q := range ps {
				if q.replicaID == id {
					leader = q
					return nil
				}
			}
			return fmt.Errorf("%s sees leader %q of shard 0, none of the members", p.Name, id)
		}
		return lastErr
	})
	return leader
}

// keepLog copies the member's output under results/.
func (p *proc) keepLog(t *testing.T) {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		t.Logf("%s: reading log: %v", p.Name, err)
		return
	}
	path := filepath.Join("results", strings.ReplaceAll(t.Name(), "/", "_")+"-"+p.Name+".log")
	if err = os.MkdirAll("results", 0o755); err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		t.Logf("%s: keeping log: %v", p.Name, err)
		return
	}
	t.Logf("%s: log kept in %s", p.Name, path) // its last lines are logged by proctest
}

// Checks.

// settleProcs waits until every member is healthy and all are at the same
// shard 0 revision, which it returns.
func settleProcs(t *testing.T, ps []*proc, rep *Report) int64 {
	t.Helper()
	for _, p := range ps {
		p.waitHealthy(t)
	}
	var revs []int64
	deadline := time.Now().Add(procWait)
	for time.Now().Before(deadline) {
		revs = nil
		for _, p := range ps {
			var s statusAnswer
			rev := int64(-1)
			if p.get("/v1/status", &s) == nil {
				_, rev, _ = s.shard0()
			}
			revs = append(revs, rev)
		}
		if slices.Min(revs) >= 0 && slices.Min(revs) == slices.Max(revs) {
			return revs[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	rep.violate("members never reached the same revision of shard 0: %v", revs)
	return slices.Max(revs)
}

// checkFinalState reads every key serializably from every member and checks
// it shows the committed history's last state of the key at the history's
// last revision.
func checkFinalState(t *testing.T, rep *Report, ps []*proc, h *history) {
	t.Helper()
	for _, p := range ps {
		var a rangeAnswer
		err := p.post("/v1/kv/range", map[string]any{"key": []byte("/rob/"), "prefix": true, "serializable": true}, &a)
		if err != nil {
			rep.violate("%s: reading the final state: %v", p.Name, err)
			continue
		}
		if a.Header.Revision != h.final {
			rep.violate("%s: final state at revision %d, the committed history ends at %d", p.Name, a.Header.Revision, h.final)
		}
		got := map[string]apiKV{}
		for _, kv := range a.KVs {
			got[string(kv.Key)] = kv
		}
		for _, k := range keys {
			found, value, modRev := h.stateAt(k, h.final)
			kv, ok := got[k]
			if ok != found || string(kv.Value) != value || kv.ModRevision != modRev {
				rep.violate("%s: %s is (%v %q @%d), the committed history ends with (%v %q @%d)",
					p.Name, k, ok, kv.Value, kv.ModRevision, found, value, modRev)
			}
		}
	}
}

// follower reads the committed history under /rob/ from revision 1 as it
// is written. It watches one member at a time, for at most followFor or
// until the member is killed, then resumes on the next member after the last
// revision it has: so resuming, on restarted members too, is exercised.
type follower struct {
	mu     sync.Mutex
	events []refEvent
	next   int64
	err    error // the history cannot be read (compacted, refused)

	streams atomic.Int64 // watch streams opened
}

func (f *follower) run(ctx context.Context, ps []*proc) {
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	for i := 0; ctx.Err() == nil; i++ {
		wctx, cancel := context.WithTimeout(ctx, followFor)
		err := f.watch(wctx, hc, ps[i%len(ps)].Client)
		cancel()
		if err != nil {
			f.mu.Lock()
			f.err = err
			f.mu.Unlock()
			return
		}
		select { // the member is down or restarting: pace, do not spin
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// watch follows one member's watch stream until it ends. It returns an
// error only when the history cannot be read (compacted, or the request
// refused).
func (f *follower) watch(ctx context.Context, hc *http.Client, addr string) error {
	f.mu.Lock()
	body, _ := json.Marshal(map[string]any{"key": []byte("/rob/"), "prefix": true, "start_revision": f.next})
	f.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/watch", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 4:
		return fmt.Errorf("POST /v1/watch: %s", resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil // the member is starting or closing
	}
	f.streams.Add(1)
	rd := bufio.NewReader(resp.Body)
	for {
		b, err := rd.ReadBytes('\n')
		if err != nil {
			return nil // the stream ended (a partial line is dropped)
		}
		var line struct {
			Events []struct {
				Type string
				KV   apiKV
			}
			CompactRevision int64 `json:"compact_revision"`
			Error           *struct{ Code, Message string }
		}
		if err := json.Unmarshal(b, &line); err != nil {
			return fmt.Errorf("POST /v1/watch: line %q: %v", b, err)
		}
		if line.CompactRevision > 0 {
			return fmt.Errorf("history compacted up to revision %d before it was read", line.CompactRevision)
		}
		if line.Error != nil {
			return nil // the member is going away
		}
		f.mu.Lock()
		for _, e := range line.Events {
			f.events = append(f.events, refEvent{rev: e.KV.ModRevision, key: string(e.KV.Key), delete: e.Type == "DELETE", value: string(e.KV.Value)})
			f.next = e.KV.ModRevision + 1
		}
		f.mu.Unlock()
	}
}

// history waits until the follower has read up to revision final and
// returns what it read. Every revision after the first is one write under
// /rob/, so a gap or a repeat means a watch resumed on another member (or
// on a restarted one) skipped or replayed something.
func (f *follower) history(t *testing.T, rep *Report, final int64) *history {
	t.Helper()
	deadline := time.Now().Add(procWait)
	for {
		f.mu.Lock()
		next, err := f.next, f.err
		f.mu.Unlock()
		if err != nil {
			t.Fatalf("reading the committed history: %v", err)
		}
		if next > final {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reading the committed history: at revision %d after %v, want %d", next-1, procWait, final)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	h := &history{final: final, byKey: map[string][]refEvent{}, perRev: map[int64]int{}}
	h.events = append([]refEvent(nil), f.events...)
	for i, e := range h.events {
		if want := int64(i) + 2; e.rev != want {
			rep.violate("committed history read through watches: event %d is at revision %d, want %d", i, e.rev, want)
		}
		h.byKey[e.key] = append(h.byKey[e.key], e)
		h.perRev[e.rev]++
	}
	return h
}

// checkChecksAreLive shows that the checks catch, in this very history, a
// stale read and a lost write. The stale read: after two acknowledged puts
// of one key begun after the first kill, the second begun after the first
// returned, a read of the first value. The history is cut after it, so that
// porcupine proves it illegal quickly however long the run. The lost write:
// the second put's event taken out of the committed history.
func checkChecksAreLive(t *testing.T, ops []porcupine.Operation, ref *history, firstKill int64) {
	t.Helper()
	var puts []porcupine.Operation
	for _, op := range ops {
		if in, out := op.Input.(input), op.Output.(output); in.Kind == opPut && !out.Unknown && op.Call > firstKill {
			puts = append(puts, op)
		}
	}
	sort.Slice(puts, func(i, j int) bool { return puts[i].Call < puts[j].Call })
	for i, first := range puts {
		key := first.Input.(input).Key
		j := slices.IndexFunc(puts[i+1:], func(op porcupine.Operation) bool {
			return op.Input.(input).Key == key && op.Call > first.Return
		})
		if j < 0 {
			continue
		}
		second := puts[i+1+j]
		v1, r1 := first.Input.(input).Value, first.Output.(output).Rev
		v2, r2 := second.Input.(input).Value, second.Output.(output).Rev
		stale := porcupine.Operation{ClientId: -1, Call: second.Return + 1, Return: second.Return + 2,
			Input:  input{Kind: opGet, Key: key},
			Output: output{Rev: r2, Found: true, Value: v1, ModRev: r1}}
		tampered := []porcupine.Operation{stale}
		for _, op := range ops {
			if op.Input.(input).Key == key && op.Call < stale.Call {
				tampered = append(tampered, op)
			}
		}
		if porcupine.CheckOperations(kvModel(), tampered) {
			t.Fatalf("a stale read of %s (%s@%d after %s@%d was acknowledged) went unnoticed", key, v1, r1, v2, r2)
		}
		lost := *ref
		lost.events = slices.DeleteFunc(slices.Clone(ref.events), func(e refEvent) bool { return e.rev == r2 })
		var rep Report
		if checkDurability(&rep, ops, &lost); len(rep.Violations) == 0 {
			t.Fatalf("losing the acknowledged write of %s@%d went unnoticed", v2, r2)
		}
		t.Logf("checks are live: a stale read of %s (%s@%d after %s@%d) and the loss of %s@%d are caught", key, v1, r1, v2, r2, v2, r2)
		return
	}
	t.Fatal("no two acknowledged puts of one key, one after the other, after the first kill: the history is too thin to show the checks work")
}
