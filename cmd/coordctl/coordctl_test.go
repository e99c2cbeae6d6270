package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
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

// ctl runs coordctl in-process and returns its exit status and output.
func ctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, env{stdout: &out, stderr: &errOut, signals: noSignals})
	return code, out.String(), errOut.String()
}

// noSignals is env.signals for a run that is never interrupted.
func noSignals() (<-chan os.Signal, func()) { return nil, func() {} }

// ok runs coordctl, expecting success, and returns its standard output.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := ctl(t, args...)
	if code != 0 || errOut != "" {
		t.Fatalf("coordctl %q: exit %d, stderr %q, stdout %q", args, code, errOut, out)
	}
	return out
}

// fails runs coordctl, expecting exit status 1 and an error naming want.
func fails(t *testing.T, want string, args ...string) {
	t.Helper()
	code, out, errOut := ctl(t, args...)
	if code != 1 || !strings.HasPrefix(errOut, "Error: ") || !strings.Contains(errOut, want) {
		t.Fatalf("coordctl %q: exit %d, stderr %q (want it to contain %q), stdout %q", args, code, errOut, want, out)
	}
}

func deadEndpoint(t *testing.T) string {
	return "http://" + proctest.FreeAddr(t)
}

func TestCoordctl(t *testing.T) {
	c := coordtest.New(t, 1)
	srv := httptest.NewServer(httpapi.New(c.Node(0)))
	defer srv.Close()
	dead := deadEndpoint(t)
	// The first endpoint refuses connections: every command moves on.
	ep := "--endpoints=" + dead + "," + srv.URL

	if out := ok(t, ep, "put", "/p/a", "1"); out != "OK\n" {
		t.Fatalf("put: %q", out)
	}
	ok(t, ep, "put", "/p/b", "two words")
	// Flags after the arguments, global flags among the command's.
	ok(t, "put", "/q", "y", ep)
	ok(t, ep, "put", "--", "-dash", "-v")
	if out := ok(t, ep, "get", "--", "-dash"); out != "-dash\n-v\n" {
		t.Fatalf("get -- -dash: %q", out)
	}
	if out := ok(t, ep, "get", "/p/a"); out != "/p/a\n1\n" {
		t.Fatalf("get: %q", out)
	}
	if out := ok(t, "get", "/p/", "--prefix", ep, "--serializable"); out != "/p/a\n1\n/p/b\ntwo words\n" {
		t.Fatalf("get --prefix: %q", out)
	}
	if out := ok(t, ep, "get", "--prefix", "--limit", "1", "/p/"); out != "/p/a\n1\n" {
		t.Fatalf("get --limit 1: %q", out)
	}
	if out := ok(t, ep, "get", "/nothing"); out != "" {
		t.Fatalf("get of a missing key: %q", out)
	}
	if out := ok(t, ep, "get", "/p/", "--prefix", "--keys-only"); out != "/p/a\n/p/b\n" {
		t.Fatalf("get --keys-only: %q", out)
	}
	if out := ok(t, ep, "get", "/p/", "--prefix", "--count-only"); out != "2\n" {
		t.Fatalf("get --count-only: %q", out)
	}
	var first struct {
		KVs []struct {
			ModRevision int64 `json:"mod_revision"`
		} `json:"kvs"`
	}
	json.Unmarshal([]byte(ok(t, ep, "get", "/p/a", "-w", "json")), &first)
	ok(t, ep, "put", "/p/a", "changed")
	if out := ok(t, ep, "get", "/p/a", "--rev", strconv.FormatInt(first.KVs[0].ModRevision, 10)); out != "/p/a\n1\n" {
		t.Fatalf("get --rev: %q", out)
	}
	ok(t, ep, "put", "/p/a", "1")
	out := ok(t, ep, "get", "/p/", "--prefix", "-w", "json")
	var resp struct {
		KVs []struct{ Key, Value []byte }
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.KVs) != 2 || string(resp.KVs[1].Value) != "two words" ||
		!strings.Contains(out, `"key":"L3AvYQ=="`) {
		t.Fatalf("get -w json: %q %v", out, err)
	}
	out = ok(t, ep, "--write-out=table", "get", "/p/", "--prefix")
	if !strings.Contains(out, "| /p/b | two words |") || !strings.HasPrefix(out, "+------+-----------+") {
		t.Fatalf("get -w table:\n%s", out)
	}

	if out := ok(t, ep, "del", "/p/", "--prefix"); out != "2\n" {
		t.Fatalf("del --prefix: %q", out)
	}
	if out := ok(t, ep, "del", "/p/a"); out != "0\n" {
		t.Fatalf("del of a deleted key: %q", out)
	}
	if out := ok(t, ep, "get", "/p/", "--prefix"); out != "" {
		t.Fatalf("get after del: %q", out)
	}

	// member list: the one member, which leads shard 0.
	ctx := coordtest.Context(t, 30*time.Second)
	st, err := c.Node(0).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, addr := strconv.FormatUint(st.ReplicaID, 10), c.Config(0).RaftAddress
	if out := ok(t, ep, "member", "list"); out != id+", m0, "+addr+", voter, 0, true\n" {
		t.Fatalf("member list: %q", out)
	}
	out = ok(t, ep, "member", "list", "-w", "table")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	header := regexp.MustCompile(`^\| +ID +\| NAME \| +PEER ADDRS +\| ROLE  \| LEADS \| REACHABLE \|$`)
	row := regexp.MustCompile(`^\| ` + id + ` +\| m0   \| ` + regexp.QuoteMeta(addr) + ` +\| voter \| 0     \| true      \|$`)
	if len(lines) != 5 || lines[0] != lines[2] || lines[0] != lines[4] || !header.MatchString(lines[1]) || !row.MatchString(lines[3]) ||
		len(lines[0]) != len(lines[1]) || len(lines[1]) != len(lines[3]) {
		t.Fatalf("member list -w table:\n%s", out)
	}

	// Membership changes and their errors.
	obsAddr := strings.TrimPrefix(deadEndpoint(t), "http://")
	out = ok(t, ep, "member", "add", "obs", obsAddr, "--observer")
	if !strings.Contains(out, "Member obs (ID ") || !strings.Contains(out, "as an observer at "+obsAddr) || !strings.Contains(out, "Observer: true") ||
		!strings.Contains(out, "member --name obs --listen-peer-urls "+obsAddr+" --initial-cluster-state existing --observer\n") {
		t.Fatalf("member add: %q", out)
	}
	// The name is taken. (The same name and address again would be taken by
	// coord as the retry of an interrupted add.)
	fails(t, "member exists", ep, "member", "add", "obs", strings.TrimPrefix(deadEndpoint(t), "http://"), "--observer")
	if out := ok(t, ep, "member", "list"); !strings.Contains(out, ", obs, "+obsAddr+", observer, -, false\n") {
		t.Fatalf("member list with an observer: %q", out)
	}
	// One voter reachable of two after a promotion: not a quorum.
	fails(t, "lose quorum", ep, "member", "promote", "obs")
	fails(t, "member not found", ep, "member", "remove", "ghost")
	if out := ok(t, ep, "member", "remove", "obs"); out != "Member obs removed from the cluster.\n" {
		t.Fatalf("member remove: %q", out)
	}

	if out := ok(t, "endpoint", "health", "--endpoints", srv.URL); !strings.HasPrefix(out, srv.URL+" is healthy: took = ") {
		t.Fatalf("endpoint health: %q", out)
	}
	code, out, errOut := ctl(t, ep, "endpoint", "health", "-w", "table")
	if code != 1 || !strings.Contains(out, "| "+dead+" | false  |") || !strings.Contains(out, "| "+srv.URL+" | true   |") ||
		!strings.Contains(errOut, "Error: unhealthy cluster: 1 of 2") {
		t.Fatalf("endpoint health with a dead endpoint: %d\n%s%s", code, out, errOut)
	}
	out = ok(t, "--endpoints", srv.URL, "endpoint", "status", "-w", "table")
	if !strings.Contains(out, "| "+srv.URL+" | m0     | "+id) || !strings.Contains(out, "IS LEADER") {
		t.Fatalf("endpoint status:\n%s", out)
	}
	out = ok(t, "--endpoints", srv.URL, "endpoint", "status", "-w", "json")
	var sts []struct {
		Endpoint string
		Status   struct{ Member string }
	}
	if err := json.Unmarshal([]byte(out), &sts); err != nil || len(sts) != 1 || sts[0].Status.Member != "m0" {
		t.Fatalf("endpoint status -w json: %q %v", out, err)
	}

	// $COORDCTL_ENDPOINTS stands in for --endpoints; the flag wins.
	t.Setenv("COORDCTL_ENDPOINTS", srv.URL)
	if out := ok(t, "put", "/env", "x"); out != "OK\n" {
		t.Fatalf("put with COORDCTL_ENDPOINTS: %q", out)
	}
	fails(t, "no endpoint answered", "--endpoints", dead, "get", "/env")

	// Usage and server errors.
	fails(t, "coord: empty key", ep, "get", "")
	fails(t, "takes 2 argument(s), got 1", ep, "put", "k")
	fails(t, "unknown command \"frob\"", ep, "frob")
	fails(t, "unknown output format", "-w", "yaml", ep, "get", "k")
	fails(t, "flag provided but not defined", ep, "get", "k", "--prefx")
	fails(t, "bad endpoint", "--endpoints", "ftp://x", "get", "k")
	fails(t, "no answer within", "--endpoints", srv.URL, "--timeout", "1ns", "get", "k")
}

func TestTable(t *testing.T) {
	tb := newTable("ID", "NAME", "PEER ADDRS")
	tb.add("1", "a", "10.0.0.1:2380")
	tb.add("1234567890", "é", "x")
	tb.add("2", "日本", "e\u0301") // wide characters take two columns, a combining accent none
	var b bytes.Buffer
	if err := tb.render(&b); err != nil {
		t.Fatal(err)
	}
	want := `+------------+------+---------------+
|     ID     | NAME |  PEER ADDRS   |
+------------+------+---------------+
| 1          | a    | 10.0.0.1:2380 |
| 1234567890 | é    | x             |
| 2          | 日本 | é             |
+------------+------+---------------+
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	if got := printable("a\x00\xff"); got != `"a\x00\xff"` {
		t.Fatalf("printable: %s", got)
	}
}

// TestCredentials: --cacert, --cert, --key and the bearer token against a
// member API that requires a client certificate and a token.
func TestCredentials(t *testing.T) {
	c := coordtest.New(t, 1)
	ca := coordtest.NewCA(t)
	server, client := ca.Issue("server"), ca.Issue("client")
	srv := httptest.NewUnstartedServer(httpapi.New(c.Node(0), httpapi.BearerToken("s3cret")))
	cert, err := tls.LoadX509KeyPair(server.CertFile, server.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca.CAFile())
	pool.AppendCertsFromPEM(pem)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ep := "--endpoints=" + srv.URL
	tlsFlags := []string{ep, "--cacert", ca.CAFile(), "--cert", client.CertFile, "--key", client.KeyFile}
	if out := ok(t, append(tlsFlags, "--bearer-token-file", tokenFile, "put", "/cred/a", "1")...); out != "OK\n" {
		t.Fatalf("put with every credential: %q", out)
	}
	t.Setenv("COORDCTL_BEARER_TOKEN", "s3cret")
	if out := ok(t, append(tlsFlags, "get", "/cred/a")...); out != "/cred/a\n1\n" {
		t.Fatalf("get with the token from the environment: %q", out)
	}
	t.Setenv("COORDCTL_BEARER_TOKEN", "wrong")
	fails(t, "bearer", append(tlsFlags, "get", "/cred/a")...)
	fails(t, "certificate", ep, "--cacert", ca.CAFile(), "get", "/cred/a")
	fails(t, "--cert and --key", ep, "--cert", client.CertFile, "get", "/cred/a")
}

// Help describes every command, one level at a time, and completion
// scripts are printed for the shells cobra supports; neither needs a
// member.
func TestHelpAndCompletion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, []string{"lease grant TTL_SECONDS", "coordctl help COMMAND", "-endpoints"}},
		{[]string{"help", "lease"}, []string{"keep-alive", "timetolive", "renew a lease"}},
		{[]string{"lease", "--help"}, []string{"keep-alive", "timetolive"}},
		{[]string{"help", "lease", "grant"}, []string{"coordctl lease grant TTL_SECONDS", "create a lease"}},
		{[]string{"help", "get"}, []string{"coordctl get KEY", "coordctl get -h"}},
		{[]string{"get", "-h"}, []string{"Usage: coordctl get KEY", "-prefix"}},
		{[]string{"completion", "bash"}, []string{"bash completion", "coordctl"}},
		{[]string{"completion", "zsh"}, []string{"#compdef coordctl"}},
	} {
		code, out, errOut := ctl(t, tc.args...)
		if code != 0 {
			t.Errorf("coordctl %q: exit %d, stderr %q", tc.args, code, errOut)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("coordctl %q: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
	fails(t, "lease needs a subcommand", "lease")
	fails(t, `unknown command "lease frob"`, "lease", "frob")
}

// TestAlarmCommands: past the quota coordctl's puts fail with the
// NOSPACE error, alarm list shows the alarm, and after del and compact,
// alarm disarm lets puts in again.
func TestAlarmCommands(t *testing.T) {
	c := coordtest.New(t, 1, coordtest.WithConfig(func(cfg *coord.Config) {
		cfg.MaxStoreBytes, cfg.HistoryRetention = 16<<10, -1
	}))
	srv := httptest.NewServer(httpapi.New(c.Node(0)))
	defer srv.Close()
	ep := "--endpoints=" + srv.URL
	value := strings.Repeat("v", 1024)
	for i := 0; ; i++ {
		code, _, errOut := ctl(t, ep, "put", fmt.Sprintf("/q/%d", i), value)
		if code != 0 {
			if !strings.Contains(errOut, "quota") {
				t.Fatalf("put past the quota: %q", errOut)
			}
			break
		}
		if i > 100 {
			t.Fatal("no refusal after 100 KiB with a 16 KiB quota")
		}
	}
	if out := ok(t, ep, "alarm", "list"); out != "shard:0 alarm:NOSPACE\n" {
		t.Fatalf("alarm list: %q", out)
	}
	if out := ok(t, ep, "alarm", "list", "-w", "table"); !strings.Contains(out, "| 0     | NOSPACE |") {
		t.Fatalf("alarm list -w table:\n%s", out)
	}
	ok(t, ep, "del", "/q/", "--prefix")
	var g struct {
		Header struct {
			Revision int64 `json:"revision"`
		} `json:"header"`
	}
	json.Unmarshal([]byte(ok(t, ep, "get", "/q/x", "-w", "json")), &g)
	ok(t, ep, "compact", strconv.FormatInt(g.Header.Revision, 10))
	if out := ok(t, ep, "alarm", "disarm"); out != "OK\n" {
		t.Fatalf("alarm disarm: %q", out)
	}
	if out := ok(t, ep, "alarm", "list"); out != "" {
		t.Fatalf("alarm list after the disarm: %q", out)
	}
	ok(t, ep, "put", "/q/again", "x")
	fails(t, "alarm needs a subcommand", ep, "alarm")
}

// TestTxn: coordctl txn reads etcdctl's interactive format from stdin.
func TestTxn(t *testing.T) {
	c := coordtest.New(t, 1)
	srv := httptest.NewServer(httpapi.New(c.Node(0)))
	defer srv.Close()
	ep := "--endpoints=" + srv.URL
	in := func(stdin string, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(args, env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, signals: noSignals})
		return code, out.String(), errOut.String()
	}
	ok(t, ep, "put", "foo", "bar")
	code, out, errOut := in("value(\"foo\") = \"bar\"\nversion(\"foo\") = \"1\"\n\nput foo baz qux\nget foo\n\nput foo nope\n\n", ep, "txn")
	if code != 0 || out != "SUCCESS\n\nOK\n\nfoo\nbaz qux\n" {
		t.Fatalf("txn: %d %q %q", code, out, errOut)
	}
	code, out, _ = in("mod(\"foo\") < \"2\"\n\ndel foo\n\nget foo\ndel foo\n\n", ep, "txn")
	if code != 0 || out != "FAILURE\n\nfoo\nbaz qux\n\n1\n" {
		t.Fatalf("failed txn: %d %q", code, out)
	}
	if code, _, errOut := in("what(\"foo\") = \"1\"\n\n\n", ep, "txn"); code != 1 || !strings.Contains(errOut, "bad compare") {
		t.Fatalf("bad compare: %d %q", code, errOut)
	}
	if code, _, errOut := in("\nfrobnicate foo\n\n", ep, "txn"); code != 1 || !strings.Contains(errOut, "bad op") {
		t.Fatalf("bad op: %d %q", code, errOut)
	}
}
