package httpapi_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
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
