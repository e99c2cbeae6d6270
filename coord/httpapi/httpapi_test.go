package httpapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/httpapi"
	"github.com/coordkit/coordkit/internal/proctest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client talks to one handler over a real loopback listener.
type client struct {
	t   *testing.T
	srv *httptest.Server
}

func serve(t *testing.T, n *coord.Node, opts ...httpapi.Option) *client {
	return serveHandler(t, httpapi.New(n, opts...))
}

func serveHandler(t *testing.T, h http.Handler) *client {
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		// Close waits for every request, and a stream a failed test left
		// open would never end.
		srv.CloseClientConnections()
		srv.Close()
	})
	return &client{t: t, srv: srv}
}

// with returns the client for use by another (sub)test.
func (c *client) with(t *testing.T) *client { return &client{t: t, srv: c.srv} }

// raw sends body (a string, or nil for none) and returns the response.
func (c *client) raw(method, path string, body io.Reader) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.srv.URL+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.srv.Client().Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, b
}

// call POSTs req as JSON (GETs when req is nil), checks the status and
// decodes the body into resp (when not nil).
func (c *client) call(path string, req any, want int, resp any) []byte {
	c.t.Helper()
	method, body := http.MethodGet, io.Reader(nil)
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			c.t.Fatal(err)
		}
		method, body = http.MethodPost, bytes.NewReader(b)
	}
	status, hdr, b := c.raw(method, path, body)
	if status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, b)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		c.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	if resp != nil {
		if err := json.Unmarshal(b, resp); err != nil {
			c.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return b
}

// fail expects an error response with the given status and code.
func (c *client) fail(method, path, body string, status int, code string) string {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	got, _, b := c.raw(method, path, rd)
	var e errBody
	if err := json.Unmarshal(b, &e); err != nil || got != status || e.Error.Code != code || e.Error.Message == "" {
		c.t.Fatalf("%s %s %.80q: got %d %s, want %d %s", method, path, body, got, b, status, code)
	}
	return e.Error.Message
}

type errBody struct {
	Error struct{ Code, Message string }
}

// Client-side mirrors of the wire types; []byte fields decode base64.
type (
	header struct {
		Shard    int    `json:"shard"`
		Revision int64  `json:"revision"`
		RaftTerm uint64 `json:"raft_term"`
		Member   string `json:"member"`
	}
	kv struct {
		Key            []byte `json:"key"`
		Value          []byte `json:"value"`
		CreateRevision int64  `json:"create_revision"`
		ModRevision    int64  `json:"mod_revision"`
		Version        int64  `json:"version"`
		Lease          int64  `json:"lease"`
	}
	putResp struct {
		Header header `json:"header"`
		PrevKV *kv    `json:"prev_kv"`
	}
	rangeResp struct {
		Header header `json:"header"`
		KVs    []kv   `json:"kvs"`
		More   bool   `json:"more"`
		Count  int64  `json:"count"`
	}
	deleteResp struct {
		Header  header `json:"header"`
		Deleted int64  `json:"deleted"`
		PrevKVs []kv   `json:"prev_kvs"`
	}
	member struct {
		Name      string `json:"name"`
		ID        string `json:"id"`
		Address   string `json:"address"`
		Voter     bool   `json:"voter"`
		Leads     []int  `json:"leads"`
		Reachable bool   `json:"reachable"`
	}
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

var decimal = regexp.MustCompile(`^[1-9][0-9]*$`)

// TestAPI runs every endpoint against one 3-member cluster, one server per
// member (more for the options). The subtests share the cluster and run in
// order; the last one stops a member.
func TestAPI(t *testing.T) {
	c := coordtest.New(t, 3)
	api := []*client{serve(t, c.Node(0)), serve(t, c.Node(1)), serve(t, c.Node(2))}

	t.Run("kv", func(t *testing.T) { testKV(t, c, api) })
	t.Run("list", func(t *testing.T) { testList(t, api) })
	t.Run("binary keys", func(t *testing.T) { testBinaryKeys(t, api) })
	t.Run("request errors", func(t *testing.T) { testRequestErrors(t, c, api) })
	t.Run("members", func(t *testing.T) { testMembers(t, api) })
	t.Run("move leader", func(t *testing.T) { testMoveLeader(t, api) })
	t.Run("conditional writes", func(t *testing.T) { testConditionalWrites(t, api) })
	t.Run("txn and compact", func(t *testing.T) { testTxnAndCompact(t, api) })
	t.Run("leases", func(t *testing.T) { testLeases(t, api) })
	t.Run("watch", func(t *testing.T) { testWatch(t, api) })
	t.Run("lock", func(t *testing.T) { testLock(t, c, api) })
	t.Run("election", func(t *testing.T) { testElection(t, c, api) })
	t.Run("registry", func(t *testing.T) { testRegistry(t, api) })
	t.Run("registry check", func(t *testing.T) { testRegistryCheck(t, api) })
	t.Run("pubsub", func(t *testing.T) { testPubSub(t, c, api) })
	t.Run("snapshot", func(t *testing.T) { testSnapshot(t, api) })
	t.Run("bearer token", func(t *testing.T) { testBearerToken(t, c) })
	t.Run("stream limits", func(t *testing.T) { testStreamLimits(t, c) })
	t.Run("slow client", func(t *testing.T) { testSlowClient(t, c) })
	t.Run("status and health", func(t *testing.T) { testStatusAndHealth(t, c, api) })
}

func testKV(t *testing.T, c *coordtest.Cluster, api []*client) {
	a, b := api[1], api[2]
	a.t, b.t = t, t
	var p putResp
	a.call("/v1/kv/put", map[string]any{"key": b64("/kv/a"), "value": b64("1"), "prev_kv": true}, 200, &p)
	if p.PrevKV != nil || p.Header.Revision <= 0 || p.Header.Member != "m1" || p.Header.RaftTerm == 0 {
		t.Fatalf("first put: %+v", p)
	}
	first := p.Header.Revision
	raw := a.call("/v1/kv/put", map[string]any{"key": b64("/kv/a"), "value": b64("2"), "prev_kv": true}, 200, &p)
	if p.PrevKV == nil || string(p.PrevKV.Value) != "1" || p.PrevKV.ModRevision != first || p.Header.Revision != first+1 {
		t.Fatalf("second put: %s", raw)
	}
	for _, k := range []string{"/kv/b", "/kv/c", "/kx"} {
		a.call("/v1/kv/put", map[string]any{"key": b64(k), "value": b64("v" + k)}, 200, nil)
	}
	// A put without prev_kv answers "prev_kv": null.
	if raw := a.call("/v1/kv/put", map[string]any{"key": b64("/kv/d")}, 200, nil); !bytes.Contains(raw, []byte(`"prev_kv":null`)) {
		t.Fatalf("put without prev_kv: %s", raw)
	}

	// Linearizable read on another member sees the write at once.
	var r rangeResp
	b.call("/v1/kv/range", map[string]any{"key": b64("/kv/a")}, 200, &r)
	if len(r.KVs) != 1 || string(r.KVs[0].Key) != "/kv/a" || string(r.KVs[0].Value) != "2" || r.KVs[0].Version != 2 ||
		r.KVs[0].CreateRevision != first || r.Count != 1 || r.Header.Member != "m2" {
		t.Fatalf("range on another member: %+v", r)
	}
	// Serializable on the member that served the write sees it too.
	a.call("/v1/kv/range", map[string]any{"key": b64("/kv/a"), "serializable": true}, 200, &r)
	if len(r.KVs) != 1 || string(r.KVs[0].Value) != "2" {
		t.Fatalf("serializable range: %+v", r)
	}
	keys := func(r rangeResp) string {
		var ks []string
		for _, kv := range r.KVs {
			ks = append(ks, string(kv.Key))
		}
		return strings.Join(ks, " ")
	}
	b.call("/v1/kv/range", map[string]any{"key": b64("/kv/"), "prefix": true}, 200, &r)
	if keys(r) != "/kv/a /kv/b /kv/c /kv/d" || r.Count != 4 || r.More {
		t.Fatalf("prefix: %q %+v", keys(r), r)
	}
	b.call("/v1/kv/range", map[string]any{"key": b64("/kv/"), "prefix": true, "limit": 2}, 200, &r)
	if keys(r) != "/kv/a /kv/b" || r.Count != 4 || !r.More {
		t.Fatalf("limit: %q %+v", keys(r), r)
	}
	b.call("/v1/kv/range", map[string]any{"key": b64("/kv/b"), "range_end": b64("/kv/d")}, 200, &r)
	if keys(r) != "/kv/b /kv/c" {
		t.Fatalf("range_end: %q", keys(r))
	}
	raw = b.call("/v1/kv/range", map[string]any{"key": b64("/kv/"), "prefix": true, "keys_only": true}, 200, &r)
	if keys(r) != "/kv/a /kv/b /kv/c /kv/d" || len(r.KVs[0].Value) != 0 || bytes.Contains(raw, []byte("null")) {
		t.Fatalf("keys_only: %s", raw)
	}
	raw = b.call("/v1/kv/range", map[string]any{"key": b64("/kv/"), "prefix": true, "count_only": true}, 200, &r)
	if len(r.KVs) != 0 || r.Count != 4 || !bytes.Contains(raw, []byte(`"kvs":[]`)) {
		t.Fatalf("count_only: %s", raw)
	}
	b.call("/v1/kv/range", map[string]any{"key": b64("/kv/a"), "revision": first}, 200, &r)
	if len(r.KVs) != 1 || string(r.KVs[0].Value) != "1" {
		t.Fatalf("range at revision %d: %+v", first, r)
	}
	raw = b.call("/v1/kv/range", map[string]any{"key": b64("/nothing")}, 200, &r)
	if len(r.KVs) != 0 || r.Count != 0 || !bytes.Contains(raw, []byte(`"kvs":[]`)) {
		t.Fatalf("missing key: %s", raw)
	}

	var d deleteResp
	raw = b.call("/v1/kv/deleterange", map[string]any{"key": b64("/kv/"), "prefix": true, "prev_kv": true}, 200, &d)
	if d.Deleted != 4 || len(d.PrevKVs) != 4 || string(d.PrevKVs[0].Key) != "/kv/a" || string(d.PrevKVs[0].Value) != "2" {
		t.Fatalf("deleterange prefix: %s", raw)
	}
	raw = b.call("/v1/kv/deleterange", map[string]any{"key": b64("/kx"), "range_end": b64("/ky")}, 200, &d)
	if d.Deleted != 1 || !bytes.Contains(raw, []byte(`"prev_kvs":[]`)) {
		t.Fatalf("deleterange range_end: %s", raw)
	}
	a.call("/v1/kv/range", map[string]any{"key": b64("/k"), "prefix": true}, 200, &r)
	if len(r.KVs) != 0 {
		t.Fatalf("left after deletes: %q", keys(r))
	}

	// Leases: a key put with a live lease carries it; an unknown lease is 404.
	ctx := coordtest.Context(t, 30*time.Second)
	g, err := c.Node(0).Grant(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Node(0).Revoke(ctx, g.ID)
	a.call("/v1/kv/put", map[string]any{"key": b64("/lease/x"), "value": b64("v"), "lease": int64(g.ID)}, 200, nil)
	a.call("/v1/kv/range", map[string]any{"key": b64("/lease/x")}, 200, &r)
	if len(r.KVs) != 1 || r.KVs[0].Lease != int64(g.ID) {
		t.Fatalf("leased key: %+v", r)
	}
	a.fail("POST", "/v1/kv/put", `{"key":"`+b64("/lease/y")+`","lease":987654321}`, 404, "not_found")

	// Compaction: reading below the compaction point is 410.
	a.call("/v1/kv/put", map[string]any{"key": b64("/cmp"), "value": b64("1")}, 200, &p)
	old := p.Header.Revision
	a.call("/v1/kv/put", map[string]any{"key": b64("/cmp"), "value": b64("2")}, 200, &p)
	if _, err := c.Node(1).Compact(ctx, 0, coord.Revision(p.Header.Revision)); err != nil {
		t.Fatal(err)
	}
	a.fail("POST", "/v1/kv/range", `{"key":"`+b64("/cmp")+`","revision":`+itoa(old)+`}`, 410, "compacted")
	a.fail("POST", "/v1/kv/range", `{"key":"`+b64("/cmp")+`","revision":`+itoa(p.Header.Revision+1000)+`}`, 400, "invalid_argument")
}

func itoa(i int64) string { b, _ := json.Marshal(i); return string(b) }

func testBinaryKeys(t *testing.T, api []*client) {
	a, b := api[0], api[2]
	a.t, b.t = t, t
	key := []byte{0x00, '/', 0xff, 'k', 0x00, 0xfe}
	value := []byte{0xff, 0x00, '\n', '"', 0x80}
	a.call("/v1/kv/put", map[string]any{"key": key, "value": value}, 200, nil)
	var r rangeResp
	b.call("/v1/kv/range", map[string]any{"key": key}, 200, &r)
	if len(r.KVs) != 1 || !bytes.Equal(r.KVs[0].Key, key) || !bytes.Equal(r.KVs[0].Value, value) {
		t.Fatalf("binary key did not round-trip: %+v", r)
	}
	b.call("/v1/kv/range", map[string]any{"key": []byte{0x00}, "prefix": true}, 200, &r)
	if len(r.KVs) != 1 || !bytes.Equal(r.KVs[0].Key, key) {
		t.Fatalf("prefix 0x00: %+v", r)
	}
	var d deleteResp
	b.call("/v1/kv/deleterange", map[string]any{"key": key, "prev_kv": true}, 200, &d)
	if d.Deleted != 1 || !bytes.Equal(d.PrevKVs[0].Value, value) {
		t.Fatalf("delete binary key: %+v", d)
	}
}

func testRequestErrors(t *testing.T, c *coordtest.Cluster, api []*client) {
	a := api[0]
	a.t = t
	k := b64("/e")
	for _, tc := range []struct {
		name, path, body string
	}{
		{"bad JSON", "/v1/kv/put", `{"key":`},
		{"not an object", "/v1/kv/put", `[1,2]`},
		{"empty body", "/v1/kv/range", ``},
		{"trailing data", "/v1/kv/put", `{"key":"` + k + `"} {}`},
		{"unknown field", "/v1/kv/put", `{"key":"` + k + `","valeu":"eA=="}`},
		{"unknown field in range", "/v1/kv/range", `{"key":"` + k + `","ttl":5}`},
		{"bad base64", "/v1/kv/put", `{"key":"not base64!","value":"eA=="}`},
		{"unpadded base64", "/v1/kv/put", `{"key":"L2U","value":"eA=="}`},
		{"wrong type", "/v1/kv/range", `{"key":"` + k + `","limit":"5"}`},
		{"empty key", "/v1/kv/put", `{"key":"","value":"eA=="}`},
		{"missing key", "/v1/kv/range", `{}`},
		{"prefix and range_end", "/v1/kv/range", `{"key":"` + k + `","prefix":true,"range_end":"` + b64("/f") + `"}`},
		{"prefix and range_end in delete", "/v1/kv/deleterange", `{"key":"` + k + `","prefix":true,"range_end":"` + b64("/f") + `"}`},
		{"negative limit", "/v1/kv/range", `{"key":"` + k + `","limit":-1}`},
		{"bad member address", "/v1/members/add", `{"name":"x","address":"nowhere"}`},
		{"unknown field in member add", "/v1/members/add", `{"name":"x","address":"127.0.0.1:1","voter":true}`},
	} {
		msg := a.fail("POST", tc.path, tc.body, 400, "invalid_argument")
		t.Logf("%s: %s", tc.name, msg)
	}
	// A key over coord's MaxKeyBytes (4096) is coord's 400, not a 413.
	a.fail("POST", "/v1/kv/put", `{"key":"`+b64(strings.Repeat("k", 5000))+`"}`, 400, "invalid_argument")

	// Bodies over the limit are 413, whether Content-Length says so or the
	// body only turns out too long while read.
	small := serve(t, c.Node(0), httpapi.MaxRequestBytes(1024))
	big := `{"key":"` + k + `","value":"` + b64(strings.Repeat("v", 2000)) + `"}`
	small.fail("POST", "/v1/kv/put", big, 413, "payload_too_large")
	if st, _, b := small.raw("POST", "/v1/kv/put", io.MultiReader(strings.NewReader(big))); st != 413 {
		t.Fatalf("chunked oversized body: %d %s", st, b)
	}
	small.call("/v1/kv/put", map[string]any{"key": b64("/e"), "value": b64("fits")}, 200, nil)
	a.fail("POST", "/v1/kv/put", `{"key":"`+k+`","value":"`+strings.Repeat("A", 5<<20)+`"}`, 413, "payload_too_large")

	// Wrong method: 405 with Allow. Unknown path: 404.
	for path, allow := range map[string]string{"/v1/kv/put": "POST", "/v1/members": "GET", "/v1/members/add": "POST", "/health": "GET", "/v1/status": "GET",
		"/v1/watch": "POST", "/v1/lock/acquire": "POST", "/v1/lease/leases": "GET", "/v1/snapshot": "GET"} {
		method := "GET"
		if allow == "GET" {
			method = "POST"
		}
		status, hdr, b := a.raw(method, path, strings.NewReader("{}"))
		var e errBody
		json.Unmarshal(b, &e)
		if status != 405 || hdr.Get("Allow") != allow || e.Error.Code != "method_not_allowed" {
			t.Fatalf("%s %s: %d Allow=%q %s", method, path, status, hdr.Get("Allow"), b)
		}
	}
	a.fail("DELETE", "/v1/kv/range", "", 405, "method_not_allowed")
	a.fail("GET", "/v1/nothing", "", 404, "not_found")
	a.fail("POST", "/v1/kv/transaction", "{}", 404, "not_found")
	a.fail("GET", "/", "", 404, "not_found")
}

func testMembers(t *testing.T, api []*client) {
	a := api[0]
	a.t = t
	var list struct{ Members []member }
	raw := a.call("/v1/members", nil, 200, &list)
	if len(list.Members) != 3 {
		t.Fatalf("members: %s", raw)
	}
	leaders := 0
	for i, m := range list.Members {
		if m.Name != "m"+itoa(int64(i)) || !decimal.MatchString(m.ID) || !m.Voter || !m.Reachable || m.Address == "" || m.Leads == nil {
			t.Fatalf("member %d: %+v in %s", i, m, raw)
		}
		leaders += len(m.Leads)
	}
	if leaders != 1 {
		t.Fatalf("%d shard leaders among the members: %s", leaders, raw)
	}

	// An observer at an address nobody listens on: it never counts toward
	// quorum, so adding it needs no force.
	addr := proctest.FreeAddr(t)
	var added struct{ Member member }
	a.call("/v1/members/add", map[string]any{"name": "obs", "address": addr, "observer": true}, 200, &added)
	if m := added.Member; m.Name != "obs" || m.Address != addr || m.Voter || !decimal.MatchString(m.ID) || m.Leads == nil {
		t.Fatalf("added: %+v", m)
	}
	a.fail("POST", "/v1/members/add", `{"name":"obs","address":"`+proctest.FreeAddr(t)+`","observer":true}`, 409, "conflict")
	a.fail("POST", "/v1/members/add", `{"name":"other","address":"`+addr+`"}`, 409, "conflict")
	api[1].t = t
	api[1].call("/v1/members", nil, 200, &list)
	if obs := find(list.Members, "obs"); len(list.Members) != 4 || obs == nil || obs.Voter || obs.Reachable {
		t.Fatalf("members after add: %+v", list.Members)
	}

	a.fail("POST", "/v1/members/promote", `{"name":"m1"}`, 400, "invalid_argument") // already a voter
	a.fail("POST", "/v1/members/promote", `{"name":"ghost"}`, 404, "not_found")
	a.fail("POST", "/v1/members/remove", `{"name":"ghost"}`, 404, "not_found")
	a.fail("POST", "/v1/members/remove", `{"name":"ghost","force":true}`, 404, "not_found")
	// Promoting the down observer: 3 of 4 voters reachable is a quorum.
	if raw := a.call("/v1/members/promote", map[string]any{"name": "obs"}, 200, nil); string(bytes.TrimSpace(raw)) != "{}" {
		t.Fatalf("promote answered %s", raw)
	}
	a.call("/v1/members", nil, 200, &list)
	if obs := find(list.Members, "obs"); obs == nil || !obs.Voter {
		t.Fatalf("after promote: %+v", list.Members)
	}
	if raw := a.call("/v1/members/remove", map[string]any{"name": "obs"}, 200, nil); string(bytes.TrimSpace(raw)) != "{}" {
		t.Fatalf("remove answered %s", raw)
	}
	a.call("/v1/members", nil, 200, &list)
	if len(list.Members) != 3 {
		t.Fatalf("members after remove: %+v", list.Members)
	}
	// A removed member's name and address can never come back.
	a.fail("POST", "/v1/members/add", `{"name":"obs","address":"`+addr+`","observer":true}`, 409, "conflict")
}

func find(ms []member, name string) *member {
	for i := range ms {
		if ms[i].Name == name {
			return &ms[i]
		}
	}
	return nil
}

func testStatusAndHealth(t *testing.T, c *coordtest.Cluster, api []*client) {
	for i, a := range api {
		a.t = t
		var st struct {
			Member    string `json:"member"`
			ReplicaID string `json:"replica_id"`
			Shards    []struct {
				Shard           int
				Leader          string
				Term, Revision  int64
				CompactRevision int64 `json:"compact_revision"`
				AppliedIndex    int64 `json:"applied_index"`
				Leases          int
			}
		}
		raw := a.call("/v1/status", nil, 200, &st)
		if st.Member != "m"+itoa(int64(i)) || !decimal.MatchString(st.ReplicaID) || len(st.Shards) != 1 ||
			!decimal.MatchString(st.Shards[0].Leader) || st.Shards[0].Term == 0 || st.Shards[0].Revision == 0 || st.Shards[0].AppliedIndex == 0 {
			t.Fatalf("status of member %d: %s", i, raw)
		}
		if raw := a.call("/health", nil, 200, nil); string(bytes.TrimSpace(raw)) != `{"health":true}` {
			t.Fatalf("health of member %d: %s", i, raw)
		}
	}

	// A closed node: unhealthy, and calls are 503 unavailable.
	c.Stop(2)
	status, _, raw := api[2].raw("GET", "/health", nil)
	var h struct {
		Health bool
		Reason string
	}
	if err := json.Unmarshal(raw, &h); err != nil || status != 503 || h.Health || h.Reason == "" {
		t.Fatalf("health of a closed member: %d %s", status, raw)
	}
	api[2].fail("POST", "/v1/kv/put", `{"key":"`+b64("/x")+`"}`, 503, "unavailable")
	api[2].fail("POST", "/v1/kv/range", `{"key":"`+b64("/x")+`"}`, 503, "unavailable")
	api[2].fail("GET", "/v1/members", "", 503, "unavailable")
	// The other two still form a quorum.
	api[0].call("/health", nil, 200, nil)
}
