package httpapi_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

// TestAlarmsEndpoints: past the quota a put is answered 507 no_space, the
// alarm is listed, and once space is freed the disarm lets puts in again.
func TestAlarmsEndpoints(t *testing.T) {
	c := coordtest.New(t, 1, coordtest.WithConfig(func(cfg *coord.Config) {
		cfg.MaxStoreBytes, cfg.HistoryRetention = 16<<10, -1
	}))
	a := serve(t, c.Node(0))
	value := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("v", 1024)))
	put := func(i int) (*http.Response, error) {
		body := fmt.Sprintf(`{"key":%q,"value":%q}`, base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("/q/%d", i))), value)
		return http.Post(a.srv.URL+"/v1/kv/put", "application/json", strings.NewReader(body))
	}
	full := false
	for i := 0; i < 100 && !full; i++ {
		resp, err := put(i)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusInsufficientStorage:
			full = true
		default:
			t.Fatalf("put %d: status %d", i, resp.StatusCode)
		}
	}
	if !full {
		t.Fatal("no 507 after 100 KiB of puts with a 16 KiB quota")
	}
	a.fail("POST", "/v1/kv/put", `{"key":"L3F4","value":"eA=="}`, 507, "no_space")
	var alarms struct {
		Alarms []struct {
			Shard int    `json:"shard"`
			Alarm string `json:"alarm"`
		} `json:"alarms"`
	}
	a.call("/v1/alarms", nil, 200, &alarms)
	if len(alarms.Alarms) != 1 || alarms.Alarms[0].Alarm != "NOSPACE" {
		t.Fatalf("alarms: %+v", alarms)
	}
	var st struct {
		Shards []struct {
			StoreBytes int64 `json:"store_bytes"`
			NoSpace    bool  `json:"nospace"`
		} `json:"shards"`
	}
	a.call("/v1/status", nil, 200, &st)
	if !st.Shards[0].NoSpace || st.Shards[0].StoreBytes < 16<<10 {
		t.Fatalf("status: %+v", st)
	}
	var del struct {
		Header struct {
			Revision int64 `json:"revision"`
		} `json:"header"`
	}
	a.call("/v1/kv/deleterange", map[string]any{"key": []byte("/q/"), "prefix": true}, 200, &del)
	a.call("/v1/kv/compact", map[string]any{"shard": 0, "revision": del.Header.Revision}, 200, nil)
	a.call("/v1/alarms/disarm", map[string]any{}, 200, nil)
	a.call("/v1/alarms", nil, 200, &alarms)
	if len(alarms.Alarms) != 0 {
		t.Fatalf("alarms after the disarm: %+v", alarms)
	}
	a.call("/v1/kv/put", map[string]any{"key": []byte("/q/again"), "value": []byte("x")}, 200, nil)
}

// TestHashCheckAndCorruptAlarm: POST /v1/hash/check reports every member's
// hash; once one member's copy diverges (a test-only hook), the check names
// it, the CORRUPT alarm is listed with it and a put is answered 503
// corrupt; disarming another kind leaves it, an unknown kind is refused,
// and once the copy is repaired and the alarm disarmed, puts go in again.
func TestHashCheckAndCorruptAlarm(t *testing.T) {
	c := coordtest.New(t, 3, coordtest.WithConfig(func(cfg *coord.Config) { cfg.HashCheckInterval = -1 }))
	a := serve(t, c.Node(0))
	a.call("/v1/kv/put", map[string]any{"key": []byte("/h"), "value": []byte("1")}, 200, nil)
	for i := range 3 {
		coordtest.Eventually(t, 5*time.Second, func() bool { return coordtest.Count(t, c.Node(i), "/h") == 1 }, "member %d behind", i)
	}
	type check struct {
		Shard    int   `json:"shard"`
		Revision int64 `json:"revision"`
		Hashes   []struct {
			Member string `json:"member"`
			ID     string `json:"id"`
			Hash   string `json:"hash"`
		} `json:"hashes"`
		Corrupt []string `json:"corrupt"`
	}
	var checks struct {
		Checks []check `json:"checks"`
	}
	a.call("/v1/hash/check", map[string]any{}, 200, &checks)
	if len(checks.Checks) != 1 || len(checks.Checks[0].Hashes) != 3 || checks.Checks[0].Corrupt != nil || checks.Checks[0].Revision < 2 {
		t.Fatalf("check of equal copies: %+v", checks)
	}
	for _, h := range checks.Checks[0].Hashes {
		if h.Hash != checks.Checks[0].Hashes[0].Hash || h.Member == "" || h.ID == "" {
			t.Fatalf("hashes: %+v", checks.Checks[0].Hashes)
		}
	}
	bad := c.Config(2).Name
	c.Diverge(2, "/h", []byte("2"))
	a.call("/v1/hash/check", map[string]any{}, 200, &checks)
	if got := checks.Checks[0].Corrupt; len(got) != 1 || got[0] != bad {
		t.Fatalf("check after tampering with %s: %+v", bad, checks)
	}
	var alarms struct {
		Alarms []struct {
			Alarm   string   `json:"alarm"`
			Members []string `json:"members"`
		} `json:"alarms"`
	}
	a.call("/v1/alarms", nil, 200, &alarms)
	if len(alarms.Alarms) != 1 || alarms.Alarms[0].Alarm != "CORRUPT" || fmt.Sprint(alarms.Alarms[0].Members) != "["+bad+"]" {
		t.Fatalf("alarms: %+v", alarms)
	}
	a.fail("POST", "/v1/kv/put", `{"key":"L2g=","value":"eA=="}`, 503, "corrupt")
	var st struct {
		Shards []struct {
			Corrupt bool `json:"corrupt"`
		} `json:"shards"`
	}
	a.call("/v1/status", nil, 200, &st)
	if !st.Shards[0].Corrupt {
		t.Fatalf("status: %+v", st)
	}
	a.call("/v1/alarms/disarm", map[string]any{"alarm": "NOSPACE"}, 200, nil)
	a.fail("POST", "/v1/kv/put", `{"key":"L2g=","value":"eA=="}`, 503, "corrupt")
	a.fail("POST", "/v1/alarms/disarm", `{"alarm":"BOGUS"}`, 400, "invalid_argument")
	c.Diverge(2, "/h", []byte("1"))
	checks.Checks = nil // json reuses a slice's elements, and "corrupt" is omitted when empty
	a.call("/v1/hash/check", map[string]any{}, 200, &checks)
	if checks.Checks[0].Corrupt != nil {
		t.Fatalf("check after the repair: %+v", checks)
	}
	a.call("/v1/alarms/disarm", map[string]any{"alarm": "CORRUPT"}, 200, nil)
	a.call("/v1/kv/put", map[string]any{"key": []byte("/h"), "value": []byte("3")}, 200, nil)
}
