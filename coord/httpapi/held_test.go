package httpapi_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

type lockLine struct {
	Lock struct {
		Name  string `json:"name"`
		Key   []byte `json:"key"`
		Fence int64  `json:"fence"`
		Lease int64  `json:"lease"`
	} `json:"lock"`
}

// waiting fails the test if a held-resource request was answered.
func waiting(t *testing.T, ch <-chan *http.Response, what string) {
	t.Helper()
	select {
	case resp, ok := <-ch:
		if ok {
			resp.Body.Close()
		}
		t.Fatalf("%s was answered while it should wait (%v)", what, ok)
	default:
	}
}

// answered waits for a held-resource request's response.
func answered(t *testing.T, ch <-chan *http.Response, what string) *http.Response {
	t.Helper()
	select {
	case resp, ok := <-ch:
		if !ok {
			t.Fatalf("%s failed", what)
		}
		return resp
	case <-time.After(lineTimeout):
		t.Fatalf("%s not answered within %v", what, lineTimeout)
		return nil
	}
}

func queued(t *testing.T, n *coord.Node, dir string, want int64) {
	t.Helper()
	ctx := coordtest.Context(t, 10*time.Second)
	coordtest.Eventually(t, 10*time.Second, func() bool {
		g, err := n.Get(ctx, dir, coord.WithPrefix(), coord.WithCountOnly())
		return err == nil && g.Count == want
	}, "%d keys queued under %s", want, dir)
}

func testLock(t *testing.T, c *coordtest.Cluster, api []*client) {
	a, b := api[0].with(t), api[1].with(t)
	const name = "/locks/job"
	req := map[string]any{"name": name, "ttl_ms": 3000}
	first := a.open("/v1/lock/acquire", req)
	var la lockLine
	first.decode(&la)
	if la.Lock.Name != name || !strings.HasPrefix(string(la.Lock.Key), name+"/") || la.Lock.Fence <= 0 || la.Lock.Lease <= 0 {
		t.Fatalf("lock line: %+v", la)
	}

	// Held elsewhere: try fails at once, a bounded wait runs out; neither
	// leaves a waiter behind.
	b.fail("POST", "/v1/lock/acquire", `{"name":"`+name+`","try":true}`, 409, "locked")
	b.fail("POST", "/v1/lock/acquire", `{"name":"`+name+`","wait_ms":300}`, 409, "locked")
	queued(t, c.Node(0), name+"/", 1)

	// A second acquire waits while the first stream is open...
	second := b.openAsync("/v1/lock/acquire", req)
	queued(t, c.Node(0), name+"/", 2)
	waiting(t, second, "a second acquire")
	// ...and gets the lock, with a greater fence, once its holder
	// disconnects.
	first.close()
	next := b.stream("/v1/lock/acquire", answered(t, second, "the second acquire"))
	var lb lockLine
	next.decode(&lb)
	if lb.Lock.Fence <= la.Lock.Fence || lb.Lock.Lease == la.Lock.Lease || bytes.Equal(lb.Lock.Key, la.Lock.Key) {
		t.Fatalf("second holder %+v after %+v", lb, la)
	}

	// Release by lease: only through the member that holds it, and it ends
	// the holder's stream.
	a.fail("POST", "/v1/lock/release", `{"lease":`+itoa(lb.Lock.Lease)+`}`, 404, "not_found")
	if raw := b.call("/v1/lock/release", map[string]any{"lease": lb.Lock.Lease}, 200, nil); string(bytes.TrimSpace(raw)) != "{}" {
		t.Fatalf("release: %s", raw)
	}
	if e := next.end("lost"); !strings.Contains(e.Error.Message, "release") {
		t.Fatalf("lost line after a release: %+v", e)
	}
	b.fail("POST", "/v1/lock/release", `{"lease":`+itoa(lb.Lock.Lease)+`}`, 404, "not_found")
	queued(t, c.Node(0), name+"/", 0)

	// Free again: try succeeds. A session killed under a holder loses the
	// lock, and the stream says so.
	third := api[2].with(t).open("/v1/lock/acquire", map[string]any{"name": name, "try": true, "ttl_ms": 3000})
	var lc lockLine
	third.decode(&lc)
	if lc.Lock.Fence <= lb.Lock.Fence {
		t.Fatalf("third fence %d after %d", lc.Lock.Fence, lb.Lock.Fence)
	}
	a.call("/v1/lease/revoke", map[string]any{"id": lc.Lock.Lease}, 200, nil)
	third.end("lost")

	for _, body := range []string{
		`{"name":""}`,
		`{"name":"/l","ttl_ms":-1}`,
		`{"name":"/l","ttl_ms":10}`,
		`{"name":"/l","try":true,"wait_ms":100}`,
		`{"name":"/l","wait_ms":-5}`,
		`{"name":"/l","wait":5}`,
	} {
		a.fail("POST", "/v1/lock/acquire", body, 400, "invalid_argument")
	}
	a.fail("POST", "/v1/lock/release", `{"lease":0}`, 400, "invalid_argument")
}

type leaderLine struct {
	Leader *struct {
		Name  string `json:"name"`
		Key   []byte `json:"key"`
		Value []byte `json:"value"`
		Rev   int64  `json:"rev"`
		Lease int64  `json:"lease"`
	} `json:"leader"`
}

func testElection(t *testing.T, c *coordtest.Cluster, api []*client) {
	a, b, o := api[0].with(t), api[1].with(t), api[2].with(t)
	const name = "/elections/e1"
	o.fail("POST", "/v1/election/leader", `{"name":"`+name+`"}`, 404, "no_leader")
	obs := o.open("/v1/election/observe", map[string]any{"name": name})
	var ol leaderLine
	if line := obs.decode(&ol); ol.Leader != nil {
		t.Fatalf("first observation: %s", line)
	}

	first := a.open("/v1/election/campaign", map[string]any{"name": name, "value": b64("a"), "ttl_ms": 3000})
	var la leaderLine
	first.decode(&la)
	if l := la.Leader; l == nil || l.Name != name || string(l.Value) != "a" || !strings.HasPrefix(string(l.Key), name+"/") || l.Rev <= 0 || l.Lease <= 0 {
		t.Fatalf("campaign line: %+v", la.Leader)
	}
	same := func(what string, got leaderLine, value string) {
		t.Helper()
		if l := got.Leader; l == nil || !bytes.Equal(l.Key, la.Leader.Key) || string(l.Value) != value || l.Rev != la.Leader.Rev || l.Lease != la.Leader.Lease || l.Name != name {
			t.Fatalf("%s: %+v, want %s with value %s", what, got.Leader, la.Leader.Key, value)
		}
	}
	obs.decode(&ol)
	same("observed", ol, "a")
	var now leaderLine
	// Leader and observe read without a session (election.Watcher).
	o.call("/v1/election/leader", map[string]any{"name": name}, 200, &now)
	same("leader", now, "a")

	second := b.openAsync("/v1/election/campaign", map[string]any{"name": name, "value": b64("b"), "ttl_ms": 3000})
	queued(t, c.Node(0), name+"/", 2)
	a.call("/v1/election/proclaim", map[string]any{"lease": la.Leader.Lease, "value": b64("a2")}, 200, nil)
	obs.decode(&ol)
	same("observed after proclaim", ol, "a2")
	b.fail("POST", "/v1/election/proclaim", `{"lease":`+itoa(la.Leader.Lease)+`,"value":"eA=="}`, 404, "not_found")
	waiting(t, second, "a second candidate")

	// Resign ends the leader's stream and elects the next candidate.
	a.call("/v1/election/resign", map[string]any{"lease": la.Leader.Lease}, 200, nil)
	first.end("lost")
	next := b.stream("/v1/election/campaign", answered(t, second, "the second candidate"))
	var lb leaderLine
	next.decode(&lb)
	if l := lb.Leader; l == nil || string(l.Value) != "b" || l.Rev <= la.Leader.Rev {
		t.Fatalf("second leader %+v after %+v", lb.Leader, la.Leader)
	}
	for {
		obs.decode(&ol)
		if ol.Leader != nil && bytes.Equal(ol.Leader.Key, lb.Leader.Key) {
			break
		}
		if ol.Leader == nil || !bytes.Equal(ol.Leader.Key, la.Leader.Key) {
			t.Fatalf("observed %+v between the two leaders", ol.Leader)
		}
	}
	if ol.Leader.Lease != lb.Leader.Lease || string(ol.Leader.Value) != "b" {
		t.Fatalf("observed second leader %+v, want %+v", ol.Leader, lb.Leader)
	}
	a.fail("POST", "/v1/election/resign", `{"lease":`+itoa(la.Leader.Lease)+`}`, 404, "not_found")

	// The leader's client disconnects: nobody leads.
	next.close()
	obs.decode(&ol)
	if ol.Leader != nil {
		t.Fatalf("observed %+v after the last candidate left", ol.Leader)
	}
	o.fail("POST", "/v1/election/leader", `{"name":"`+name+`"}`, 404, "no_leader")
	o.fail("POST", "/v1/election/leader", `{"name":""}`, 400, "invalid_argument")
	o.fail("POST", "/v1/election/observe", `{"name":""}`, 400, "invalid_argument")
	o.fail("POST", "/v1/election/campaign", `{"name":"","value":"eA=="}`, 400, "invalid_argument")
}

type instance struct {
	Service  string            `json:"service"`
	ID       string            `json:"id"`
	Addr     string            `json:"addr"`
	Metadata map[string]string `json:"metadata"`
	Weight   int               `json:"weight"`
	Status   string            `json:"status"`
	Revision int64             `json:"revision"`
}

type registryEvent struct {
	Type     string    `json:"type"`
	Instance *instance `json:"instance"`
	Revision int64     `json:"revision"`
}

func testRegistry(t *testing.T, api []*client) {
	a, b := api[0].with(t), api[1].with(t)
	lookup := func() []instance {
		var l struct {
			Instances []instance `json:"instances"`
		}
		raw := a.call("/v1/registry/lookup", map[string]any{"service": "api"}, 200, &l)
		if l.Instances == nil {
			t.Fatalf("lookup: %s", raw)
		}
		return l.Instances
	}
	if got := lookup(); len(got) != 0 {
		t.Fatalf("lookup before any registration: %+v", got)
	}
	watch := a.open("/v1/registry/watch", map[string]any{"service": "api"})
	var synced registryEvent
	if line := watch.decode(&synced); synced.Type != "synced" || synced.Instance != nil || synced.Revision <= 0 {
		t.Fatalf("first line of a watch of no instance: %s", line)
	}

	reg := b.open("/v1/registry/register", map[string]any{"service": "api", "id": "i1", "addr": "10.0.0.1:80",
		"metadata": map[string]string{"zone": "a"}, "weight": 3, "ttl_ms": 3000})
	var r struct {
		Registered instance `json:"registered"`
	}
	reg.decode(&r)
	want := instance{Service: "api", ID: "i1", Addr: "10.0.0.1:80", Metadata: map[string]string{"zone": "a"}, Weight: 3, Status: "passing"}
	same := func(what string, got instance) {
		t.Helper()
		if got.Service != want.Service || got.ID != want.ID || got.Addr != want.Addr || got.Metadata["zone"] != "a" ||
			got.Weight != want.Weight || got.Status != want.Status || got.Revision <= 0 {
			t.Fatalf("%s: %+v", what, got)
		}
	}
	same("registered", r.Registered)
	got := lookup()
	if len(got) != 1 {
		t.Fatalf("lookup: %+v", got)
	}
	same("looked up", got[0])
	if got[0].Revision != r.Registered.Revision {
		t.Fatalf("revision %d looked up, %d registered", got[0].Revision, r.Registered.Revision)
	}
	var ev registryEvent
	watch.decode(&ev)
	if ev.Type != "added" || ev.Instance == nil || ev.Revision != r.Registered.Revision {
		t.Fatalf("watch: %+v", ev)
	}
	same("watched", *ev.Instance)
	var svcs struct {
		Services []string `json:"services"`
	}
	a.call("/v1/registry/services", map[string]any{}, 200, &svcs)
	if strings.Join(svcs.Services, ",") != "api" {
		t.Fatalf("services: %+v", svcs)
	}
	a.call("/v1/registry/services", map[string]any{"prefix": "/elsewhere"}, 200, &svcs)
	if svcs.Services == nil || len(svcs.Services) != 0 {
		t.Fatalf("services under another prefix: %+v", svcs)
	}
	b.fail("POST", "/v1/registry/register", `{"service":"api","id":"i1","addr":"x"}`, 400, "invalid_argument")

	// The registering client goes away: the instance is gone at once.
	reg.close()
	coordtest.Eventually(t, 10*time.Second, func() bool { return len(lookup()) == 0 }, "instance deregistered")
	watch.decode(&ev)
	if ev.Type != "removed" || ev.Instance == nil || ev.Instance.ID != "i1" || ev.Revision <= r.Registered.Revision {
		t.Fatalf("watch after deregistration: %+v", ev)
	}
	watch.close()

	// A watch resumed from a revision replays the changes after it.
	watch = b.open("/v1/registry/watch", map[string]any{"service": "api", "from_revision": synced.Revision})
	watch.decode(&ev)
	if ev.Type != "added" || ev.Instance.ID != "i1" {
		t.Fatalf("resumed watch, first event: %+v", ev)
	}
	watch.decode(&ev)
	if ev.Type != "removed" || ev.Instance.ID != "i1" {
		t.Fatalf("resumed watch, second event: %+v", ev)
	}

	a.fail("POST", "/v1/registry/lookup", `{"service":"a/b"}`, 400, "invalid_argument")
	a.fail("POST", "/v1/registry/watch", `{"service":""}`, 400, "invalid_argument")
	a.fail("POST", "/v1/registry/register", `{"service":"api","id":"","addr":"x"}`, 400, "invalid_argument")
	a.fail("POST", "/v1/registry/register", `{"service":"api","id":"i2","addr":"x","status":"fine"}`, 400, "invalid_argument")
	a.fail("POST", "/v1/registry/register", `{"service":"api","id":"i2","addr":"x","weight":-1}`, 400, "invalid_argument")
}

// testRegistryCheck: a registration made through the API with a check,
// which the serving member runs: the instance's status follows the checked
// server's answers. Checks without one target, or with a bad URL, are
// refused.
func testRegistryCheck(t *testing.T, api []*client) {
	a, b := api[0].with(t), api[1].with(t)
	var code atomic.Int64
	code.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(code.Load())) }))
	defer srv.Close()
	reg := b.open("/v1/registry/register", map[string]any{"service": "checked", "id": "c1", "addr": "127.0.0.1:1",
		"check": map[string]any{"http": srv.URL, "interval_ms": 50, "timeout_ms": 1000}})
	defer reg.close()
	var r struct {
		Registered instance `json:"registered"`
	}
	reg.decode(&r)
	status := func() string {
		var l struct {
			Instances []instance `json:"instances"`
		}
		a.call("/v1/registry/lookup", map[string]any{"service": "checked"}, 200, &l)
		if len(l.Instances) != 1 {
			return ""
		}
		return l.Instances[0].Status
	}
	for _, step := range []struct {
		code int
		want string
	}{{500, "critical"}, {429, "warning"}, {200, "passing"}} {
		code.Store(int64(step.code))
		coordtest.Eventually(t, 10*time.Second, func() bool { return status() == step.want },
			"status never became %s after the server answered %d", step.want, step.code)
	}
	b.fail("POST", "/v1/registry/register", `{"service":"checked","id":"c2","addr":"x","check":{}}`, 400, "invalid_argument")
	b.fail("POST", "/v1/registry/register", `{"service":"checked","id":"c2","addr":"x","check":{"http":"x","tcp":"y"}}`, 400, "invalid_argument")
	b.fail("POST", "/v1/registry/register", `{"service":"checked","id":"c2","addr":"x","check":{"http":"ftp://h/"}}`, 400, "invalid_argument")
	b.fail("POST", "/v1/registry/register", `{"service":"checked","id":"c2","addr":"x","check":{"tcp":"h:1","interval_ms":-1}}`, 400, "invalid_argument")
}
