package httpapi_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

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
