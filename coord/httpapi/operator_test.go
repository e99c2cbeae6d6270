package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/httpapi"
)

type listResp struct {
	Header  header `json:"header"`
	Entries []struct {
		Name []byte `json:"name"`
		Dir  bool   `json:"dir"`
		KV   *kv    `json:"kv"`
	} `json:"entries"`
}

// names renders a list's entries as "name" for a key with its value
// after "=", "name" alone for a directory.
func (l listResp) names() string {
	var out []string
	for _, e := range l.Entries {
		switch {
		case e.Dir && e.KV == nil:
			out = append(out, string(e.Name))
		case !e.Dir && e.KV != nil && bytes.Equal(e.KV.Key, e.Name):
			out = append(out, string(e.Name)+"="+string(e.KV.Value))
		default:
			out = append(out, fmt.Sprintf("malformed entry %+v", e))
		}
	}
	return strings.Join(out, " ")
}

func testList(t *testing.T, api []*client) {
	a, b := api[0].with(t), api[1].with(t)
	for _, k := range []string{"/ls/a", "/ls/b/x", "/ls/b/y", "/ls/c/d/e", "/ls/d"} {
		a.call("/v1/kv/put", map[string]any{"key": b64(k), "value": b64("v" + k[4:])}, 200, nil)
	}
	want := "/ls/a=va /ls/b/ /ls/c/ /ls/d=vd"
	var l listResp
	// With and without the trailing "/", linearizable on another member.
	for _, dir := range []string{"/ls", "/ls/"} {
		raw := b.call("/v1/kv/list", map[string]any{"dir": b64(dir)}, 200, &l)
		if got := l.names(); got != want || l.Header.Member != "m1" || l.Header.Revision == 0 {
			t.Fatalf("list %s: %q, want %q: %s", dir, got, want, raw)
		}
	}
	b.call("/v1/kv/list", map[string]any{"dir": b64("/ls/b"), "serializable": true}, 200, &l)
	if got := l.names(); got != "/ls/b/x=vb/x /ls/b/y=vb/y" {
		t.Fatalf("list /ls/b, serializable: %q", got)
	}
	// The top level holds "/" itself as a directory when listed from "".
	b.call("/v1/kv/list", map[string]any{"dir": b64("/")}, 200, &l)
	if got := " " + l.names() + " "; !strings.Contains(got, " /ls/ ") {
		t.Fatalf("list /: %q lacks /ls/", got)
	}
	b.call("/v1/kv/list", map[string]any{}, 200, &l)
	if got := " " + l.names() + " "; !strings.Contains(got, " / ") {
		t.Fatalf("list of the empty dir: %q lacks /", got)
	}
	if raw := b.call("/v1/kv/list", map[string]any{"dir": b64("/nothing/")}, 200, &l); !bytes.Contains(raw, []byte(`"entries":[]`)) {
		t.Fatalf("list of an empty dir: %s", raw)
	}
	a.fail("POST", "/v1/kv/list", `{"dir":"`+b64("/ls")+`","prefix":true}`, 400, "invalid_argument")
	a.fail("POST", "/v1/kv/list", `{"dir":"`+b64(strings.Repeat("d", 5000))+`"}`, 400, "invalid_argument")
	a.fail("GET", "/v1/kv/list", "", 405, "method_not_allowed")
}

func testMoveLeader(t *testing.T, api []*client) {
	a := api[0].with(t)
	var list struct{ Members []member }
	a.call("/v1/members", nil, 200, &list)
	target := ""
	for _, m := range list.Members {
		if len(m.Leads) == 0 {
			target = m.Name
		}
	}
	if target == "" {
		t.Fatalf("no member leads nothing: %+v", list.Members)
	}
	if raw := a.call("/v1/members/move-leader", map[string]any{"name": target}, 200, nil); string(bytes.TrimSpace(raw)) != "{}" {
		t.Fatalf("move-leader answered %s", raw)
	}
	// The member that served the request sees the target lead.
	a.call("/v1/members", nil, 200, &list)
	if m := find(list.Members, target); m == nil || fmt.Sprint(m.Leads) != "[0]" {
		t.Fatalf("after moving shard 0 to %s: %+v", target, list.Members)
	}
	// Moving it to the leader is done at once.
	a.call("/v1/members/move-leader", map[string]any{"name": target, "shard": 0}, 200, nil)
	a.fail("POST", "/v1/members/move-leader", `{"name":"ghost"}`, 404, "not_found")
	a.fail("POST", "/v1/members/move-leader", `{"name":"`+target+`","shard":1}`, 400, "invalid_argument")
	a.fail("POST", "/v1/members/move-leader", `{"name":""}`, 400, "invalid_argument")
	a.fail("POST", "/v1/members/move-leader", `{"member":"m1"}`, 400, "invalid_argument")
	a.fail("GET", "/v1/members/move-leader", "", 405, "method_not_allowed")
}

// testRestore loads backup, a backup of a cluster with /snap keys, into
// a new cluster through POST /v1/snapshot/restore, after the refusals.
func testRestore(t *testing.T, backup []byte, snapKeys int) {
	other := coordtest.New(t, 1)
	a := serve(t, other.Node(0))
	for name, body := range map[string][]byte{
		"truncated": backup[:len(backup)/2],
		"altered":   bytes.Replace(backup, []byte(`"coordkit-backup"`), []byte(`"coordkit-backuq"`), 1),
		"empty":     nil,
	} {
		msg := a.fail("POST", "/v1/snapshot/restore", string(body), 400, "invalid_argument")
		if !strings.Contains(msg, "coord: bad backup") {
			t.Fatalf("%s backup: %q", name, msg)
		}
	}
	// Over MaxRestoreBytes: known from Content-Length, or only once read.
	small := serve(t, other.Node(0), httpapi.MaxRestoreBytes(int64(len(backup)-1)))
	small.fail("POST", "/v1/snapshot/restore", string(backup), 413, "payload_too_large")
	if status, _, b := small.raw("POST", "/v1/snapshot/restore", io.MultiReader(bytes.NewReader(backup))); status != 413 {
		t.Fatalf("chunked oversized backup: %d %s", status, b)
	}

	// While one restore is receiving its backup, another is refused.
	pr, pw := io.Pipe()
	type answer struct {
		status int
		body   []byte
		err    error
	}
	first := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequestWithContext(coordtestContext(t), http.MethodPost, a.srv.URL+"/v1/snapshot/restore", pr)
		resp, err := a.srv.Client().Do(req)
		if err != nil {
			first <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		first <- answer{resp.StatusCode, b, err}
	}()
	half := len(backup) / 2
	if _, err := pw.Write(backup[:half]); err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 10*time.Second, func() bool {
		status, _, _ := a.raw("POST", "/v1/snapshot/restore", strings.NewReader("x"))
		return status == http.StatusConflict
	}, "a second restore is refused while the first receives its backup")
	msg := a.fail("POST", "/v1/snapshot/restore", "x", 409, "conflict")
	if !strings.Contains(msg, "a restore is already running") {
		t.Fatalf("second restore: %q", msg)
	}
	pw.Write(backup[half:])
	pw.Close()
	got := <-first
	var res struct {
		Keys         int `json:"keys"`
		SkippedLease int `json:"skipped_lease"`
	}
	if got.err != nil || got.status != 200 || json.Unmarshal(got.body, &res) != nil || res.Keys < snapKeys || res.SkippedLease < 1 {
		t.Fatalf("restore: %d %s %v", got.status, got.body, got.err)
	}
	ctx := coordtest.Context(t, 30*time.Second)
	g, err := other.Node(0).Get(ctx, "/snap", coord.WithPrefix())
	if err != nil || len(g.KVs) != snapKeys {
		t.Fatalf("restored /snap keys: %+v %v, want %d (the leased one skipped)", g, err, snapKeys)
	}
	// Now the cluster holds keys.
	msg = a.fail("POST", "/v1/snapshot/restore", string(backup), 409, "conflict")
	if !strings.Contains(msg, "coord: cluster not empty") {
		t.Fatalf("restore into a cluster with keys: %q", msg)
	}
	a.fail("GET", "/v1/snapshot/restore", "", 405, "method_not_allowed")
}

// A restore whose client goes away as soon as it has sent the backup still
// runs to its end.
func TestRestoreOutlivesItsClient(t *testing.T) {
	src := coordtest.New(t, 1)
	ctx := coordtest.Context(t, 30*time.Second)
	ops := make([]coord.Op, 0, 100)
	for i := range 100 {
		ops = append(ops, coord.OpPut(fmt.Sprintf("/many/%03d", i), []byte("v")))
	}
	if _, err := src.Node(0).Txn(ctx).Then(ops...).Commit(); err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if err := src.Node(0).Snapshot(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	// Small transactions: the restore takes several proposals.
	dst := coordtest.New(t, 1, coordtest.WithConfig(func(cfg *coord.Config) { cfg.MaxTxnOps = 4 }))
	a := serve(t, dst.Node(0))
	conn, err := net.Dial("tcp", a.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/snapshot/restore HTTP/1.1\r\nHost: coordkit\r\nContent-Length: %d\r\n\r\n", backup.Len())
	if _, err := conn.Write(backup.Bytes()); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	coordtest.Eventually(t, 20*time.Second, func() bool {
		g, err := dst.Node(0).Get(ctx, "/many/", coord.WithPrefix(), coord.WithCountOnly())
		return err == nil && g.Count == 100
	}, "the restore goes on to every key")
}
