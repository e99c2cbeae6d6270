package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coordkit/coordkit/internal/proctest"
)

// Timing flags every member gets: a short heartbeat, and an election timeout
// long enough that a loaded 2-core machine does not trigger elections.
var timing = []string{"--heartbeat-interval", "50", "--election-timeout", "1000", "--log-level", "info"}

const (
	token       = "cluster-test"
	waitTimeout = 30 * time.Second // for any one state to be reached
	stopTimeout = 15 * time.Second // for a process to exit after SIGTERM
	// putTimeout bounds one attempt of a put: a proposal lost with a killed
	// leader is only ever answered by a timeout, and is then retried.
	putTimeout = 3 * time.Second
	// pollEvery is the interval between two tries of a wait.
	pollEvery = 100 * time.Millisecond
)

// TestCluster runs members of cmd/coordkit as separate processes on
// loopback and drives them over the HTTP API, as an operator would with
// coordctl.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts member processes; skipped with -short")
	}
	start := time.Now()
	dir := t.TempDir()
	bin := proctest.Build(t, dir, "github.com/coordkit/coordkit/cmd/coordkit")[0]
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))

	var voters []*member
	for _, m := range proctest.Founders(t, bin, dir, token, 3, timing...) {
		voters = append(voters, &member{t: t, Member: m})
	}
	m1, m2, m3 := voters[0], voters[1], voters[2]
	m4 := &member{t: t, Member: proctest.NewMember(t, bin, dir, "m4")}

	step := func(what string) { t.Logf("%6.1fs %s", time.Since(start).Seconds(), what) }

	step("start m1, m2, m3")
	for _, m := range voters {
		m.Start(t)
	}
	for _, m := range voters {
		m.waitHealthy()
	}

	step("write through m1, linearizable read through m2")
	want := map[string]string{}
	put := func(m *member, k, v string) {
		t.Helper()
		m.put(k, v)
		want[k] = v
	}
	put(m1, "/k/1", "one")
	if v, ok := m2.get("/k/1", false); !ok || v != "one" {
		t.Fatalf("linearizable get /k/1 on m2 = %q, %v; want one", v, ok)
	}

	// Killing the leader of shard 0 (where every /k/ key lives) is the
	// harder case: writes wait for an election.
	victim := m1.leaderOfShard0(voters)
	var rest []*member
	for _, m := range voters {
		if m != victim {
			rest = append(rest, m)
		}
	}
	step(fmt.Sprintf("kill -9 %s, the leader; writes continue through %s and %s", victim.Name, rest[0].Name, rest[1].Name))
	victim.Kill()
	put(rest[0], "/k/2", "two")
	put(rest[1], "/k/3", "three")
	if v, ok := rest[0].get("/k/3", false); !ok || v != "three" {
		t.Fatalf("linearizable get /k/3 on %s = %q, %v; want three", rest[0].Name, v, ok)
	}

	step("restart " + victim.Name + "; it catches up")
	victim.Start(t)
	victim.waitKeys(true, want)

	step("add m4 as an observer through m1, start it")
	m1.post("/v1/members/add", map[string]any{"name": m4.Name, "address": m4.Peer, "observer": true}, nil)
	var initial []string
	for _, m := range []*member{m1, m2, m3, m4} {
		initial = append(initial, m.Name+"=http://"+m.Peer)
	}
	secret := flagValue(m1.Args, "--cluster-secret-file")
	m4.Args = append(append(m4.Flags(strings.Join(initial, ","), token, "existing", secret), "--observer"), timing...)
	m4.Start(t)
	m4.waitHealthy()
	// Removed before its own start-up wait ends, a member exits with an
	// error instead of serving: wait until it says it is ready.
	m4.eventually("print that it is ready", func() error {
		b, err := os.ReadFile(m4.Log)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "member "+m4.Name+" ready") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	put(m2, "/k/4", "four")
	m4.waitKeys(true, want)
	if got, want := fmt.Sprint(m3.members()), "map[m1:true m2:true m3:true m4:false]"; got != want {
		t.Fatalf("members seen by m3 (name:voter): %s, want %s", got, want)
	}

	step("remove m4 through m1, stop it")
	m1.post("/v1/members/remove", map[string]any{"name": m4.Name}, nil)
	if got, want := fmt.Sprint(m2.members()), "map[m1:true m2:true m3:true]"; got != want {
		t.Fatalf("members seen by m2 after removing m4 (name:voter): %s, want %s", got, want)
	}
	m4.stop()
	put(m3, "/k/5", "five")

	step("stop m1, m2, m3 with SIGTERM")
	for _, m := range voters {
		m.stop()
	}

	step("restart m1, m2, m3 from their data")
	for _, m := range voters {
		m.Start(t)
	}
	for _, m := range voters {
		m.waitHealthy()
	}
	for _, m := range voters {
		m.waitKeys(false, want)
	}
	step("done")
}

// member is one member process. Its stdout and stderr are appended to its
// log across restarts.
type member struct {
	*proctest.Member
	t     *testing.T
	httpc http.Client
}

// flagValue is the value after flag in args, or "".
func flagValue(args []string, flag string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			return args[i+1]
		}
	}
	return ""
}

// stop sends SIGTERM and waits for the process to exit, which must be with
// status 0.
func (m *member) stop() {
	m.t.Helper()
	if !m.Running() {
		m.t.Fatalf("stop %s: not running", m.Name)
	}
	began := time.Now()
	err := m.Signal(syscall.SIGTERM, stopTimeout)
	m.t.Logf("%s exited after SIGTERM in %v: %v", m.Name, time.Since(began).Round(time.Millisecond), proctest.ExitStatus(err))
	if err != nil {
		m.t.Fatalf("%s: exit after SIGTERM: %v, want status 0", m.Name, err)
	}
}

// eventually polls f until it succeeds, failing the test after waitTimeout.
// It gives up early when the member's process has exited.
func (m *member) eventually(what string, f func() error) {
	m.t.Helper()
	m.Eventually(m.t, waitTimeout, pollEvery, what, f)
}

// waitHealthy polls GET /health until it answers 200.
func (m *member) waitHealthy() {
	m.t.Helper()
	m.eventually("healthy", func() error {
		var out struct {
			Health bool   `json:"health"`
			Reason string `json:"reason"`
		}
		if err := m.do(http.MethodGet, "/health", nil, &out); err != nil {
			return err
		}
		if !out.Health {
			return fmt.Errorf("health false: %s", out.Reason)
		}
		return nil
	})
}

// waitKeys polls a range read of /k/ until it returns exactly want.
func (m *member) waitKeys(serializable bool, want map[string]string) {
	m.t.Helper()
	m.eventually(fmt.Sprintf("read every key (serializable=%v)", serializable), func() error {
		got, err := m.rangePrefix("/k/", serializable)
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(want) { // fmt sorts map keys
			return fmt.Errorf("got %v, want %v", got, want)
		}
		return nil
	})
}

// put writes key=value, retrying failures (an election may be under way)
// until waitTimeout. A retried put rewrites the same value, so a first
// attempt with an unknown outcome does no harm.
func (m *member) put(key, value string) {
	m.t.Helper()
	m.eventually("put "+key, func() error {
		return m.doTimeout(putTimeout, http.MethodPost, "/v1/kv/put", map[string]any{"key": []byte(key), "value": []byte(value)}, nil)
	})
}

// get reads one key; it fails the test on an error.
func (m *member) get(key string, serializable bool) (string, bool) {
	m.t.Helper()
	var out rangeResponse
	if err := m.do(http.MethodPost, "/v1/kv/range", map[string]any{"key": []byte(key), "serializable": serializable}, &out); err != nil {
		m.t.Fatalf("%s: get %s: %v", m.Name, key, err)
	}
	if len(out.KVs) == 0 {
		return "", false
	}
	return string(out.KVs[0].Value), true
}

type rangeResponse struct {
	KVs []struct {
		Key   []byte `json:"key"`
		Value []byte `json:"value"`
	} `json:"kvs"`
}

func (m *member) rangePrefix(prefix string, serializable bool) (map[string]string, error) {
	var out rangeResponse
	err := m.do(http.MethodPost, "/v1/kv/range", map[string]any{"key": []byte(prefix), "prefix": true, "serializable": serializable}, &out)
	if err != nil {
		return nil, err
	}
	got := map[string]string{}
	for _, kv := range out.KVs {
		got[string(kv.Key)] = string(kv.Value)
	}
	return got, nil
}

// leaderOfShard0 returns the member of ms that m sees leading shard 0.
func (m *member) leaderOfShard0(ms []*member) *member {
	m.t.Helper()
	var leader *member
	m.eventually("learn the leader of shard 0", func() error {
		var st struct {
			Shards []struct {
				Shard  int    `json:"shard"`
				Leader string `json:"leader"`
			} `json:"shards"`
		}
		if err := m.do(http.MethodGet, "/v1/status", nil, &st); err != nil {
			return err
		}
		var list struct {
			Members []struct {
				Name string `json:"name"`
				ID   string `json:"id"`
			} `json:"members"`
		}
		if err := m.do(http.MethodGet, "/v1/members", nil, &list); err != nil {
			return err
		}
		for _, sh := range st.Shards {
			if sh.Shard != 0 {
				continue
			}
			for _, mb := range list.Members {
				if mb.ID != sh.Leader {
					continue
				}
				for _, c := range ms {
					if c.Name == mb.Name {
						leader = c
						return nil
					}
				}
			}
			return fmt.Errorf("leader %q of shard 0 is none of the members %+v", sh.Leader, list.Members)
		}
		return fmt.Errorf("no shard 0 in %+v", st)
	})
	return leader
}

// members maps each member's name to whether it is a voter.
func (m *member) members() map[string]bool {
	m.t.Helper()
	var out struct {
		Members []struct {
			Name  string `json:"name"`
			Voter bool   `json:"voter"`
		} `json:"members"`
	}
	m.eventually("list members", func() error { return m.do(http.MethodGet, "/v1/members", nil, &out) })
	voter := map[string]bool{}
	for _, mb := range out.Members {
		voter[mb.Name] = mb.Voter
	}
	return voter
}

// post calls a membership endpoint once: membership changes are not
// retried blindly, their errors fail the test.
func (m *member) post(path string, body, out any) {
	m.t.Helper()
	if err := m.do(http.MethodPost, path, body, out); err != nil {
		m.t.Fatalf("%s: POST %s: %v", m.Name, path, err)
	}
}

// do makes one HTTP API call; an answer other than 200 is an error carrying
// the API's error code and message.
func (m *member) do(method, path string, body, out any) error {
	return m.doTimeout(10*time.Second, method, path, body, out)
}

func (m *member) doTimeout(timeout time.Duration, method, path string, body, out any) error {
	var rd io.Reader // a nil interface, not a nil *bytes.Reader, for no body
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+m.Client+path, rd)
	if err != nil {
		return err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := m.httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
			Health bool   `json:"health"`
			Reason string `json:"reason"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		if e.Reason != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Reason)
		}
		return fmt.Errorf("%s %s: %s: %s: %s", method, path, resp.Status, e.Error.Code, e.Error.Message)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}
