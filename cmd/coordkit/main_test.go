package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/internal/proctest"
)

func TestRunBadFlag(t *testing.T) {
	err := run(context.Background(), []string{"--initial-cluster-state", "maybe"}, io.Discard, io.Discard)
	var usage *usageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "--initial-cluster-state") {
		t.Fatalf("run = %v, want a usage error naming --initial-cluster-state", err)
	}
}

// TestRunSingleMember starts a one-member cluster in-process, checks that it
// says it is ready and serves the HTTP API, and stops it by cancelling ctx.
func TestRunSingleMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a member")
	}
	peer, client := proctest.FreeAddr(t), proctest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr proctest.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--name", "solo", "--data-dir", filepath.Join(t.TempDir(), "solo"),
			"--listen-peer-urls", peer, "--listen-client-urls", "http://" + client,
			"--heartbeat-interval", "50", "--election-timeout", "1000"}, &stdout, &stderr)
	}()
	defer func() {
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	}()

	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "member solo ready\n") {
		select {
		case err := <-done:
			t.Fatalf("run returned before ready: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 30s; stdout %q", stdout.String())
		}
	}
	resp, err := http.Get("http://" + client + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /health: %s", resp.Status)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return within 15s of cancel")
	}
	if !strings.Contains(stderr.String(), "member closed") {
		t.Errorf("stderr lacks \"member closed\":\n%s", stderr.String())
	}
}

// startMember runs the member in-process with args (plus a fresh data dir
// and free ports) until it says it is ready, and stops it at the end of the
// test. It returns the client address.
func startMember(t *testing.T, args ...string) string {
	t.Helper()
	m := newMember(t, filepath.Join(t.TempDir(), "solo"), args...)
	m.start()
	return m.client
}

// testMember is a member run in-process, which may be stopped and started
// again with the same data dir, ports and flags.
type testMember struct {
	t              *testing.T
	client         string
	args           []string
	stdout, stderr *proctest.Buffer
	cancel         context.CancelFunc
	done           chan error
}

// newMember prepares a member with data dir dir, free ports and args; the
// end of the test stops it.
func newMember(t *testing.T, dir string, args ...string) *testMember {
	peer, client := proctest.FreeAddr(t), proctest.FreeAddr(t)
	m := &testMember{t: t, client: client, args: append([]string{"--name", "solo", "--data-dir", dir,
		"--listen-peer-urls", peer, "--listen-client-urls", client,
		"--heartbeat-interval", "50", "--election-timeout", "1000"}, args...)}
	t.Cleanup(func() {
		m.stop()
		if t.Failed() && m.stderr != nil {
			t.Logf("stderr:\n%s", m.stderr.String())
		}
	})
	return m
}

// start runs the member until it says it is ready.
func (m *testMember) start() {
	m.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan error, 1)
	m.stdout, m.stderr = new(proctest.Buffer), new(proctest.Buffer)
	go func() { m.done <- run(ctx, m.args, m.stdout, m.stderr) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(m.stdout.String(), "member solo ready\n") {
		select {
		case err := <-m.done:
			m.done <- err
			m.t.Fatalf("run returned before ready: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("not ready after 30s; stdout %q", m.stdout.String())
		}
	}
}

// stop stops a started member, which must end cleanly.
func (m *testMember) stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.cancel = nil
	if err := <-m.done; err != nil {
		m.t.Errorf("run: %v", err)
	}
}

// TestRestoreFlag: --restore loads a backup on the first start of a
// member, before it says it is ready, and is ignored on later starts.
func TestRestoreFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a member")
	}
	src := coordtest.New(t, 1)
	ctx := coordtest.Context(t, 30*time.Second)
	n := src.Node(0)
	for k, v := range map[string]string{"/r/a": "1", "/r/b/c": "two"} {
		if _, err := n.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	g, err := n.Grant(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Put(ctx, "/r/leased", []byte("x"), coord.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Snapshot(ctx, f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	m := newMember(t, filepath.Join(t.TempDir(), "solo"), "--restore", backup)
	m.start()
	want := "member restored 2 keys from " + backup + " (1 attached to leases skipped)\nmember solo ready\n"
	if out := m.stdout.String(); out != want {
		t.Fatalf("stdout %q, want %q", out, want)
	}
	keys := func() string {
		t.Helper()
		resp, err := http.Post("http://"+m.client+"/v1/kv/range", "application/json",
			strings.NewReader(`{"key":"L3Iv","prefix":true}`)) // "/r/"
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct {
			KVs []struct {
				Key, Value []byte
				Version    int64
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, kv := range r.KVs {
			out = append(out, fmt.Sprintf("%s=%s@%d", kv.Key, kv.Value, kv.Version))
		}
		return strings.Join(out, " ")
	}
	if got := keys(); got != "/r/a=1@1 /r/b/c=two@1" {
		t.Fatalf("restored keys: %s", got)
	}

	// A restart with the same flags leaves the keys alone.
	m.stop()
	m.start()
	if out := m.stdout.String(); out != "member solo ready\n" {
		t.Fatalf("stdout after a restart: %q", out)
	}
	if !strings.Contains(m.stderr.String(), "--restore ignored: this member has started before") {
		t.Fatalf("stderr after a restart lacks why --restore was ignored:\n%s", m.stderr.String())
	}
	if got := keys(); got != "/r/a=1@1 /r/b/c=two@1" {
		t.Fatalf("keys after a restart: %s", got)
	}

	// A file that is not a backup stops a first start, saying nothing was
	// restored.
	bad := filepath.Join(t.TempDir(), "bad.db")
	if err := os.WriteFile(bad, []byte("not a backup\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newMember(t, filepath.Join(t.TempDir(), "solo"), "--restore", bad)
	var stderr proctest.Buffer
	err = run(ctx, b.args, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "coord: bad backup") || !strings.Contains(err.Error(), "nothing was restored") {
		t.Fatalf("run with a bad backup: %v", err)
	}
}

// TestClientURLSecurity: TLS with client certificates and a bearer token on
// the API; /health and /metrics without the token; pprof only when asked.
func TestClientURLSecurity(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a member")
	}
	ca := coordtest.NewCA(t)
	server, client := ca.Issue("server"), ca.Issue("client")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startMember(t, "--cert-file", server.CertFile, "--key-file", server.KeyFile,
		"--trusted-ca-file", ca.CAFile(), "--client-cert-auth", "--bearer-token-file", tokenFile, "--enable-pprof")

	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca.CAFile())
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(client.CertFile, client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	httpsClient := func(withCert bool) *http.Client {
		cfg := &tls.Config{RootCAs: pool}
		if withCert {
			cfg.Certificates = []tls.Certificate{cert}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	get := func(c *http.Client, path, token string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if _, _, err := get(httpsClient(false), "/health", ""); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	// Go's TLS server answers a plaintext request with a 400 of its own.
	if resp, err := http.Get("http://" + addr + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plaintext HTTP on a TLS client URL: %s", resp.Status)
		}
	}
	c := httpsClient(true)
	if code, _, err := get(c, "/v1/members", ""); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("members without the token: %d, %v; want 401", code, err)
	}
	if code, body, err := get(c, "/v1/members", "s3cret"); err != nil || code != http.StatusOK || !strings.Contains(body, `"solo"`) {
		t.Fatalf("members with the token: %d %s, %v", code, body, err)
	}
	if code, _, err := get(c, "/health", ""); err != nil || code != http.StatusOK {
		t.Fatalf("health without the token: %d, %v; want 200", code, err)
	}
	if code, body, err := get(c, "/metrics", ""); err != nil || code != http.StatusOK ||
		!strings.Contains(body, `coordkit_shard_is_leader{member="solo",shard="0"} 1`) {
		t.Fatalf("metrics: %d, %v:\n%.500s", code, err, body)
	}
	if code, _, err := get(c, "/debug/pprof/", ""); err != nil || code != http.StatusOK {
		t.Fatalf("pprof: %d, %v", code, err)
	}
}

func TestPprofOffByDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a member")
	}
	addr := startMember(t)
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("pprof served without --enable-pprof")
	}
}
