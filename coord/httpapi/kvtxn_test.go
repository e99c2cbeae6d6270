package httpapi_test

import (
	"bytes"
	"strings"
	"testing"
)

func testConditionalWrites(t *testing.T, api []*client) {
	a, b := api[0].with(t), api[1].with(t)
	k := b64("/cas/k")
	var p putResp
	// 0: create only if absent.
	a.call("/v1/kv/put", map[string]any{"key": k, "value": b64("1"), "if_mod_revision": 0}, 200, &p)
	created := p.Header.Revision
	msg := b.fail("POST", "/v1/kv/put", `{"key":"`+k+`","value":"`+b64("2")+`","if_mod_revision":0}`, 409, "compare_failed")
	if !strings.Contains(msg, "/cas/k") || !strings.Contains(msg, itoa(created)) {
		t.Fatalf("compare_failed message should name the key and its mod revision %d: %q", created, msg)
	}
	raw := b.call("/v1/kv/put", map[string]any{"key": k, "value": b64("2"), "if_mod_revision": created, "prev_kv": true}, 200, &p)
	if p.PrevKV == nil || string(p.PrevKV.Value) != "1" || p.Header.Revision <= created {
		t.Fatalf("swap: %s", raw)
	}
	swapped := p.Header.Revision
	a.fail("POST", "/v1/kv/put", `{"key":"`+k+`","value":"`+b64("3")+`","if_mod_revision":`+itoa(created)+`}`, 409, "compare_failed")
	var r rangeResp
	a.call("/v1/kv/range", map[string]any{"key": k}, 200, &r)
	if len(r.KVs) != 1 || string(r.KVs[0].Value) != "2" || r.KVs[0].ModRevision != swapped {
		t.Fatalf("after a failed swap: %+v", r)
	}

	// Conditional delete of one key.
	a.fail("POST", "/v1/kv/deleterange", `{"key":"`+k+`","if_mod_revision":`+itoa(created)+`}`, 409, "compare_failed")
	a.fail("POST", "/v1/kv/deleterange", `{"key":"`+k+`","prefix":true,"if_mod_revision":`+itoa(swapped)+`}`, 400, "invalid_argument")
	var d deleteResp
	a.call("/v1/kv/deleterange", map[string]any{"key": k, "if_mod_revision": swapped, "prev_kv": true}, 200, &d)
	if d.Deleted != 1 || len(d.PrevKVs) != 1 || string(d.PrevKVs[0].Value) != "2" {
		t.Fatalf("conditional delete: %+v", d)
	}
	msg = a.fail("POST", "/v1/kv/put", `{"key":"`+k+`","if_mod_revision":`+itoa(swapped)+`}`, 409, "compare_failed")
	if !strings.Contains(msg, "does not exist") {
		t.Fatalf("compare on a missing key: %q", msg)
	}
	a.fail("POST", "/v1/kv/put", `{"key":"`+k+`","if_mod_revision":-1}`, 400, "invalid_argument")
	a.fail("POST", "/v1/kv/put", `{"key":"","if_mod_revision":0}`, 400, "invalid_argument")
}

type txnResp struct {
	Header    header `json:"header"`
	Succeeded bool   `json:"succeeded"`
	Responses []struct {
		Put         *putResp    `json:"put"`
		Range       *rangeResp  `json:"range"`
		DeleteRange *deleteResp `json:"delete_range"`
	} `json:"responses"`
}

func testTxnAndCompact(t *testing.T, api []*client) {
	a := api[2].with(t)
	// Create /txn/a unless it holds "x": as etcd, a failed compare is 200
	// with succeeded=false, and the failure branch ran.
	txn := map[string]any{
		"compare": []any{map[string]any{"key": b64("/txn/a"), "target": "value", "result": "=", "value": b64("x")}},
		"success": []any{
			map[string]any{"delete_range": map[string]any{"key": b64("/txn/a"), "prev_kv": true}},
			map[string]any{"range": map[string]any{"key": b64("/txn/"), "prefix": true}},
		},
		"failure": []any{
			map[string]any{"put": map[string]any{"key": b64("/txn/a"), "value": b64("x")}},
			map[string]any{"range": map[string]any{"key": b64("/txn/"), "prefix": true}},
		},
	}
	var tr txnResp
	raw := a.call("/v1/kv/txn", txn, 200, &tr)
	if tr.Succeeded || len(tr.Responses) != 2 || tr.Responses[0].Put == nil || tr.Responses[1].Range == nil ||
		len(tr.Responses[1].Range.KVs) != 1 || string(tr.Responses[1].Range.KVs[0].Value) != "x" || tr.Header.Revision == 0 {
		t.Fatalf("txn whose compare fails: %s", raw)
	}
	if bytes.Contains(raw, []byte(`"delete_range"`)) || bytes.Contains(raw, []byte(`"range":null`)) {
		t.Fatalf("a response holds only its own operation: %s", raw)
	}
	created := tr.Header.Revision
	raw = a.call("/v1/kv/txn", txn, 200, &tr)
	if !tr.Succeeded || len(tr.Responses) != 2 || tr.Responses[0].DeleteRange == nil || tr.Responses[0].DeleteRange.Deleted != 1 ||
		string(tr.Responses[0].DeleteRange.PrevKVs[0].Value) != "x" || tr.Responses[1].Range.Count != 0 {
		t.Fatalf("txn whose compare holds: %s", raw)
	}
	// Number targets.
	txn = map[string]any{
		"compare": []any{
			map[string]any{"key": b64("/txn/a"), "target": "version", "result": "=", "number": 0},
			map[string]any{"key": b64("/txn/a"), "target": "mod", "result": "<", "number": created + 1000},
			map[string]any{"key": b64("/txn/a"), "target": "create", "result": "!=", "number": 5},
			map[string]any{"key": b64("/txn/a"), "target": "lease", "result": "=", "number": 0},
		},
		"success": []any{map[string]any{"put": map[string]any{"key": b64("/txn/b"), "value": b64("y"), "prev_kv": true}}},
	}
	raw = a.call("/v1/kv/txn", txn, 200, &tr)
	if !tr.Succeeded || len(tr.Responses) != 1 || tr.Responses[0].Put == nil || tr.Responses[0].Put.PrevKV != nil {
		t.Fatalf("txn on number targets: %s", raw)
	}
	if raw := a.call("/v1/kv/txn", map[string]any{}, 200, &tr); !tr.Succeeded || !bytes.Contains(raw, []byte(`"responses":[]`)) {
		t.Fatalf("empty txn: %s", raw)
	}
	for _, body := range []string{
		`{"compare":[{"key":"` + b64("/txn/a") + `","target":"size","result":"=","number":1}]}`,
		`{"compare":[{"key":"` + b64("/txn/a") + `","target":"version","result":"~","number":1}]}`,
		`{"compare":[{"key":"` + b64("/txn/a") + `","target":"version","result":"=","value":"eA=="}]}`,
		`{"compare":[{"key":"` + b64("/txn/a") + `","target":"value","result":"=","number":1}]}`,
		`{"success":[{"put":{"key":"` + b64("/txn/a") + `"},"range":{"key":"` + b64("/txn/a") + `"}}]}`,
		`{"success":[{}]}`,
		`{"failure":[{"range":{"key":"` + b64("/txn/a") + `","serializable":true}}]}`,
		`{"success":[{"put":{"key":"` + b64("/txn/a") + `","if_mod_revision":0}}]}`,
		`{"success":[{"put":{"key":"` + b64("/txn/a") + `"}},{"put":{"key":"` + b64("/txn/a") + `"}}]}`,
		`{"success":[{"put":{"key":"` + b64("/txn/a") + `","valeu":"eA=="}}]}`,
	} {
		msg := a.fail("POST", "/v1/kv/txn", body, 400, "invalid_argument")
		t.Logf("%s: %s", body, msg)
	}

	var p putResp
	a.call("/v1/kv/put", map[string]any{"key": b64("/txn/c"), "value": b64("1")}, 200, &p)
	var cr struct {
		Header header `json:"header"`
	}
	a.call("/v1/kv/compact", map[string]any{"shard": 0, "revision": p.Header.Revision}, 200, &cr)
	if cr.Header.Revision < p.Header.Revision || cr.Header.Member != "m2" {
		t.Fatalf("compact: %+v", cr)
	}
	a.fail("POST", "/v1/kv/compact", `{"shard":0,"revision":`+itoa(p.Header.Revision)+`}`, 410, "compacted")
	a.fail("POST", "/v1/kv/compact", `{"shard":3,"revision":`+itoa(p.Header.Revision+1)+`}`, 400, "invalid_argument")
	a.fail("POST", "/v1/kv/range", `{"key":"`+b64("/txn/c")+`","revision":`+itoa(p.Header.Revision-1)+`}`, 410, "compacted")
}

type leaseResp struct {
	ID    int64 `json:"id"`
	TTLMs int64 `json:"ttl_ms"`
}

func testLeases(t *testing.T, api []*client) {
	a, b := api[0].with(t), api[1].with(t)
	var g leaseResp
	a.call("/v1/lease/grant", map[string]any{"ttl_ms": 5000}, 200, &g)
	if g.ID <= 0 || g.TTLMs != 5000 {
		t.Fatalf("grant: %+v", g)
	}
	key := []byte{'/', 'l', 0xff}
	a.call("/v1/kv/put", map[string]any{"key": key, "value": b64("v"), "lease": g.ID}, 200, nil)
	var ttl struct {
		ID           int64    `json:"id"`
		TTLMs        int64    `json:"ttl_ms"`
		GrantedTTLMs int64    `json:"granted_ttl_ms"`
		Keys         [][]byte `json:"keys"`
	}
	raw := b.call("/v1/lease/timetolive", map[string]any{"id": g.ID, "keys": true}, 200, &ttl)
	if ttl.ID != g.ID || ttl.GrantedTTLMs != 5000 || ttl.TTLMs <= 0 || ttl.TTLMs > 5000 || len(ttl.Keys) != 1 || !bytes.Equal(ttl.Keys[0], key) {
		t.Fatalf("timetolive: %s", raw)
	}
	if raw := b.call("/v1/lease/timetolive", map[string]any{"id": g.ID}, 200, &ttl); !bytes.Contains(raw, []byte(`"keys":[]`)) {
		t.Fatalf("timetolive without keys: %s", raw)
	}
	var k leaseResp
	b.call("/v1/lease/keepalive", map[string]any{"id": g.ID}, 200, &k)
	if k.ID != g.ID || k.TTLMs != 5000 {
		t.Fatalf("keepalive: %+v", k)
	}
	var list struct {
		Leases []leaseResp `json:"leases"`
	}
	b.call("/v1/lease/leases", nil, 200, &list)
	found := false
	for _, l := range list.Leases {
		found = found || (l.ID == g.ID && l.TTLMs == 5000)
	}
	if !found {
		t.Fatalf("lease %d not in %+v", g.ID, list.Leases)
	}
	if raw := b.call("/v1/lease/revoke", map[string]any{"id": g.ID}, 200, nil); string(bytes.TrimSpace(raw)) != "{}" {
		t.Fatalf("revoke: %s", raw)
	}
	var r rangeResp
	a.call("/v1/kv/range", map[string]any{"key": key}, 200, &r)
	if len(r.KVs) != 0 {
		t.Fatalf("the revoked lease's key is still there: %+v", r)
	}
	id := itoa(g.ID)
	a.fail("POST", "/v1/lease/timetolive", `{"id":`+id+`}`, 404, "not_found")
	a.fail("POST", "/v1/lease/keepalive", `{"id":`+id+`}`, 404, "not_found")
	a.fail("POST", "/v1/lease/revoke", `{"id":`+id+`}`, 404, "not_found")
	a.fail("POST", "/v1/lease/revoke", `{"id":0}`, 400, "invalid_argument")
	a.fail("POST", "/v1/lease/keepalive", `{"id":-3}`, 400, "invalid_argument")
	a.fail("POST", "/v1/lease/grant", `{"ttl_ms":0}`, 400, "invalid_argument")
	a.fail("POST", "/v1/lease/grant", `{"ttl_ms":10}`, 400, "invalid_argument") // below twice the election timeout
	a.fail("POST", "/v1/lease/grant", `{"ttl":1000}`, 400, "invalid_argument")
}
