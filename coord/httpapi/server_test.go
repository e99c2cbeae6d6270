package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/httpapi"
)

func testSnapshot(t *testing.T, api []*client) {
	a := api[0].with(t)
	key := []byte{'/', 's', 'n', 'a', 'p', 0xff}
	a.call("/v1/kv/put", map[string]any{"key": key, "value": []byte{0, 1, 2}}, 200, nil)
	a.call("/v1/kv/put", map[string]any{"key": b64("/snap/b"), "value": b64("b")}, 200, nil)
	// A key attached to a lease is saved, and skipped by a restore.
	var g struct {
		ID int64 `json:"id"`
	}
	a.call("/v1/lease/grant", map[string]any{"ttl_ms": 60000}, 200, &g)
	defer a.call("/v1/lease/revoke", map[string]any{"id": g.ID}, 200, nil)
	a.call("/v1/kv/put", map[string]any{"key": b64("/snap/leased"), "value": b64("l"), "lease": g.ID}, 200, nil)
	status, hdr, body := a.raw("GET", "/v1/snapshot", nil)
	if status != 200 || hdr.Get("Content-Type") != "application/octet-stream" || len(body) == 0 {
		t.Fatalf("snapshot: %d %v (%d bytes)", status, hdr, len(body))
	}
	if !bytes.Contains(body, []byte(`"k":"`+b64("/snap/leased")+`"`)) {
		t.Fatalf("the leased key is not in the backup:\n%s", body)
	}
	a.fail("POST", "/v1/snapshot", "{}", 405, "method_not_allowed")
	testRestore(t, body, 2)
}

func testBearerToken(t *testing.T, c *coordtest.Cluster) {
	a := serve(t, c.Node(0), httpapi.BearerToken("s3cret"))
	call := func(method, path, auth, body string) (int, http.Header, []byte) {
		req, err := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := a.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b
	}
	rng := `{"key":"` + b64("/auth") + `"}`
	for _, tc := range []struct{ method, path, auth string }{
		{"POST", "/v1/kv/range", ""},
		{"POST", "/v1/kv/range", "Bearer s3cre"},
		{"POST", "/v1/kv/range", "Bearer s3cret2"},
		{"POST", "/v1/kv/range", "Basic s3cret"},
		{"POST", "/v1/kv/range", "s3cret"},
		{"POST", "/v1/watch", ""},
		{"GET", "/v1/members", ""},
		{"GET", "/v1/nothing", ""},
		{"POST", "/health", ""},
	} {
		status, hdr, b := call(tc.method, tc.path, tc.auth, rng)
		if status != 401 || hdr.Get("WWW-Authenticate") != "Bearer" || !bytes.Contains(b, []byte(`"code":"unauthenticated"`)) {
			t.Fatalf("%s %s with %q: %d %v %s", tc.method, tc.path, tc.auth, status, hdr, b)
		}
	}
	if status, _, b := call("POST", "/v1/kv/range", "Bearer s3cret", rng); status != 200 {
		t.Fatalf("with the token: %d %s", status, b)
	}
	if status, _, b := call("POST", "/v1/kv/range", "bearer  s3cret", rng); status != 200 {
		t.Fatalf("with the token, scheme in lower case: %d %s", status, b)
	}
	if status, _, b := call("GET", "/health", "", ""); status != 200 {
		t.Fatalf("health without a token: %d %s", status, b)
	}
	resp, err := a.post(coordtest.Context(t, 30*time.Second), "/v1/watch", map[string]any{"key": b64("/auth")},
		http.Header{"Authorization": {"Bearer s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	a.stream("/v1/watch", resp).created()

	// An empty token opens nothing.
	empty := serve(t, c.Node(0), httpapi.BearerToken(""))
	a = empty
	if status, _, b := call("POST", "/v1/kv/range", "Bearer ", rng); status != 401 {
		t.Fatalf("empty token: %d %s", status, b)
	}
	if status, _, b := call("GET", "/health", "", ""); status != 200 {
		t.Fatalf("health with an empty token configured: %d %s", status, b)
	}
}

func testStreamLimits(t *testing.T, c *coordtest.Cluster) {
	h := httpapi.New(c.Node(1), httpapi.MaxStreams(1), httpapi.HeartbeatInterval(50*time.Millisecond))
	a := serveHandler(t, h)
	w := a.open("/v1/watch", map[string]any{"key": b64("/limits")})
	w.created()
	// Idle: heartbeats.
	for i := 0; i < 2; i++ {
		if line := w.raw(); !isHeartbeat(line) {
			t.Fatalf("idle stream sent %s", line)
		}
	}
	if n := httpapi.ActiveStreams(h); n != 1 {
		t.Fatalf("%d active streams, want 1", n)
	}
	for _, path := range []string{"/v1/watch", "/v1/pubsub/subscribe", "/v1/lock/acquire"} {
		a.fail("POST", path, `{"key":"`+b64("/limits")+`"}`, 503, "too_many_streams")
	}
	a.fail("GET", "/v1/snapshot", "", 503, "too_many_streams")
	a.call("/v1/kv/put", map[string]any{"key": b64("/limits"), "value": b64("v")}, 200, nil) // not a stream
	var l watchLine
	w.decode(&l)
	w.close()
	coordtest.Eventually(t, 10*time.Second, func() bool { return httpapi.ActiveStreams(h) == 0 }, "the stream's slot is free")

	// With progress_notify, an idle watch tells how far it has delivered.
	w = a.open("/v1/watch", map[string]any{"key": b64("/limits"), "progress_notify": true})
	from := w.created()
	if line := w.decode(&l); len(l.Events) != 0 || l.Events == nil || l.Header.Revision < from.Revision {
		t.Fatalf("progress line after %+v: %s", from, line)
	}
}

// testSlowClient: a client that stops reading a stream is disconnected
// after StreamWriteTimeout, and the stream's slot and goroutine are freed.
func testSlowClient(t *testing.T, c *coordtest.Cluster) {
	h := httpapi.New(c.Node(0), httpapi.StreamWriteTimeout(300*time.Millisecond))
	srv := httptest.NewUnstartedServer(h)
	// Small socket buffers, so that a few lines fill them.
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		if err == nil {
			err = conn.(*net.TCPConn).SetReadBuffer(4096)
		}
		return conn, err
	}}
	t.Cleanup(tr.CloseIdleConnections)
	srv.Client().Transport = tr
	a := &client{t: t, srv: srv}

	w := a.open("/v1/watch", map[string]any{"key": b64("/slow/"), "prefix": true})
	w.created()
	// From here on the client reads nothing.
	ctx := coordtest.Context(t, 30*time.Second)
	value := bytes.Repeat([]byte("v"), 8<<10)
	for round := 0; round < 2; round++ {
		ops := make([]coord.Op, 0, 100)
		for i := 0; i < 100; i++ {
			ops = append(ops, coord.OpPut("/slow/"+itoa(int64(round*100+i)), value))
		}
		if _, err := c.Node(0).Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	coordtest.Eventually(t, 15*time.Second, func() bool { return httpapi.ActiveStreams(h) == 0 }, "the slow client's stream ended")
}

type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err == nil {
		err = conn.(*net.TCPConn).SetWriteBuffer(4096)
	}
	return conn, err
}

// A server that shuts down with ErrShuttingDown as its BaseContext's cause
// ends every open stream with an "unavailable" line, and a held lock is
// released, so Shutdown does not wait for streams that would never end.
func TestShutdownEndsStreamsWithAReason(t *testing.T) {
	c := coordtest.New(t, 1)
	base, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	srv := httptest.NewUnstartedServer(httpapi.New(c.Node(0)))
	srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	srv.Start()
	defer srv.Close()
	cl := &client{t: t, srv: srv}
	w := cl.open("/v1/watch", map[string]any{"key": b64("/quiet/"), "prefix": true})
	w.decode(&struct {
		Header  any  `json:"header"`
		Created bool `json:"created"`
	}{})
	l := cl.open("/v1/lock/acquire", map[string]any{"name": "/down/lock"})
	l.line()
	stop(httpapi.ErrShuttingDown)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with open streams: %v", err)
	}
	w.end("unavailable")
	l.end("unavailable")
	g, err := c.Node(0).Get(ctx, "/down/lock/", coord.WithPrefix(), coord.WithCountOnly())
	if err != nil || g.Count != 0 {
		t.Fatalf("the held lock's key after shutdown: %v, %v", g, err)
	}
}

// Without a quorum, writes and linearizable reads answer 503 no_quorum or
// 504 timeout (never hang, never 500), /health says why, and serializable
// reads still work.
func TestNoQuorum(t *testing.T) {
	c := coordtest.New(t, 3, coordtest.WithConfig(func(cfg *coord.Config) { cfg.RequestTimeout = 1500 * time.Millisecond }))
	a := serve(t, c.Node(0))
	a.call("/v1/kv/put", map[string]any{"key": b64("/nq/a"), "value": b64("1")}, 200, nil)
	c.Stop(1)
	c.Stop(2)
	// A put may enter the log of a leader that has not yet noticed it is
	// alone: its outcome is then unknown (504); once the leader has stepped
	// down, requests find no leader (503).
	status, _, b := a.raw("POST", "/v1/kv/put", strings.NewReader(`{"key":"`+b64("/nq/b")+`","value":"eA=="}`))
	var e errBody
	if err := json.Unmarshal(b, &e); err != nil ||
		!(status == 503 && e.Error.Code == "no_quorum" || status == 504 && e.Error.Code == "timeout") {
		t.Fatalf("put without quorum: %d %s, want 503 no_quorum or 504 timeout", status, b)
	}
	t.Logf("put without quorum: %d %s", status, b)
	coordtest.Eventually(t, 10*time.Second, func() bool {
		status, _, b = a.raw("POST", "/v1/kv/range", strings.NewReader(`{"key":"`+b64("/nq/a")+`"}`))
		return status == 503 && json.Unmarshal(b, &e) == nil && e.Error.Code == "no_quorum"
	}, "a linearizable read without quorum never answered 503 no_quorum")
	status, _, b = a.raw("GET", "/health", nil)
	if status != 503 || !strings.Contains(string(b), `"health":false`) {
		t.Fatalf("health without quorum: %d %s", status, b)
	}
	var got rangeResp
	a.call("/v1/kv/range", map[string]any{"key": b64("/nq/a"), "serializable": true}, 200, &got)
	if len(got.KVs) != 1 {
		t.Fatalf("serializable read without quorum: %+v", got)
	}
}
