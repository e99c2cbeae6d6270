package httpapi_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/pubsub"
)

type messageLine struct {
	Message struct {
		Topic   string    `json:"topic"`
		Offset  int64     `json:"offset"`
		Time    time.Time `json:"time"`
		Payload []byte    `json:"payload"`
	} `json:"message"`
}

func testPubSub(t *testing.T, c *coordtest.Cluster, api []*client) {
	a, b := api[0].with(t), api[1].with(t)
	publish := func(payload string) int64 {
		var p struct {
			Offset int64 `json:"offset"`
		}
		a.call("/v1/pubsub/publish", map[string]any{"topic": "orders", "payload": b64(payload)}, 200, &p)
		return p.Offset
	}
	expect := func(s *ndjson, payload string, offset int64) {
		t.Helper()
		var m messageLine
		line := s.decode(&m)
		if m.Message.Topic != "orders" || string(m.Message.Payload) != payload || m.Message.Time.IsZero() ||
			(offset != 0 && m.Message.Offset != offset) {
			t.Fatalf("want %s at %d, got %s", payload, offset, line)
		}
	}
	o1 := publish("m1")
	o2 := publish("m2")
	if o2 <= o1 || o1 <= 0 {
		t.Fatalf("offsets %d then %d", o1, o2)
	}
	all := b.open("/v1/pubsub/subscribe", map[string]any{"topic": "orders", "from": "earliest"})
	expect(all, "m1", o1)
	expect(all, "m2", o2)
	live := b.open("/v1/pubsub/subscribe", map[string]any{"topic": "orders"})
	since := time.Now()
	o3 := publish("m3")
	expect(all, "m3", o3)
	expect(live, "m3", o3)
	from := b.open("/v1/pubsub/subscribe", map[string]any{"topic": "orders", "offset": o2})
	expect(from, "m2", o2)
	expect(from, "m3", o3)
	at := b.open("/v1/pubsub/subscribe", map[string]any{"topic": "orders", "time": since.Format(time.RFC3339Nano)})
	expect(at, "m3", o3)
	// An empty payload is "" rather than null.
	a.call("/v1/pubsub/publish", map[string]any{"topic": "orders"}, 200, nil)
	if line := live.line(); !bytes.Contains(line, []byte(`"payload":""`)) {
		t.Fatalf("empty payload: %s", line)
	}

	// Offsets older than retention: the stream says which is the earliest.
	ctx := coordtest.Context(t, 30*time.Second)
	ps := pubsub.New(c.Node(2), "/topics")
	if err := ps.SetRetention(ctx, "orders", pubsub.Retention{MaxMessages: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Trim(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	st, err := ps.Stats(ctx, "orders")
	if err != nil || st.Messages != 1 {
		t.Fatalf("after trim: %+v %v", st, err)
	}
	// The stats endpoint answers what PubSub.Stats says.
	var got struct {
		Messages int   `json:"messages"`
		Bytes    int64 `json:"bytes"`
		First    int64 `json:"first"`
		Last     int64 `json:"last"`
		Removed  int64 `json:"removed"`
	}
	raw := b.call("/v1/pubsub/stats", map[string]any{"topic": "orders"}, 200, &got)
	if got.Messages != st.Messages || got.Bytes != st.Bytes || got.First != int64(st.First) || got.Last != int64(st.Last) ||
		got.Removed != st.Removed || got.Removed == 0 {
		t.Fatalf("stats: %s, want %+v", raw, st)
	}
	if raw := b.call("/v1/pubsub/stats", map[string]any{"topic": "nothing"}, 200, nil); string(bytes.TrimSpace(raw)) != `{"messages":0,"bytes":0,"first":0,"last":0,"removed":0}` {
		t.Fatalf("stats of a topic without messages: %s", raw)
	}
	b.call("/v1/pubsub/stats", map[string]any{"prefix": "/elsewhere", "topic": "orders"}, 200, &got)
	if got.Messages != 0 {
		t.Fatalf("stats under another prefix: %+v", got)
	}
	gone := b.open("/v1/pubsub/subscribe", map[string]any{"topic": "orders", "offset": o1})
	if e := gone.end("out_of_range"); e.Error.Earliest == nil || *e.Error.Earliest != int64(st.First) {
		t.Fatalf("out_of_range line %+v, want earliest %d", e, st.First)
	}

	for _, body := range []string{
		`{"topic":""}`,
		`{"topic":"a/b"}`,
		`{"topic":"orders","from":"yesterday"}`,
		`{"topic":"orders","from":"earliest","offset":5}`,
		`{"topic":"orders","from":"now","time":"2024-01-01T00:00:00Z"}`,
		`{"topic":"orders","offset":0}`,
		`{"topic":"orders","time":"yesterday"}`,
	} {
		a.fail("POST", "/v1/pubsub/subscribe", body, 400, "invalid_argument")
	}
	a.fail("POST", "/v1/pubsub/publish", `{"topic":"","payload":"eA=="}`, 400, "invalid_argument")
	a.fail("POST", "/v1/pubsub/stats", `{"topic":"a/b"}`, 400, "invalid_argument")
	a.fail("POST", "/v1/pubsub/stats", `{"topic":"orders","from":"now"}`, 400, "invalid_argument")

	// A msg_id publishes once; the retention endpoint sets what Trim applies.
	var first, again struct {
		Offset int64 `json:"offset"`
	}
	a.call("/v1/pubsub/publish", map[string]any{"topic": "dedup", "payload": b64("x"), "msg_id": "order-7"}, 200, &first)
	b.call("/v1/pubsub/publish", map[string]any{"topic": "dedup", "payload": b64("x"), "msg_id": "order-7"}, 200, &again)
	if first.Offset <= 0 || again.Offset != first.Offset {
		t.Fatalf("a msg_id published twice: offsets %d and %d", first.Offset, again.Offset)
	}
	a.call("/v1/pubsub/publish", map[string]any{"topic": "dedup", "payload": b64("y")}, 200, nil)
	a.call("/v1/pubsub/retention", map[string]any{"topic": "dedup", "max_messages": 1, "max_age_ms": 3600000, "duplicate_window_ms": 60000}, 200, nil)
	if n, err := ps.Trim(ctx, "dedup"); err != nil || n != 1 {
		t.Fatalf("Trim after the retention endpoint: removed %d, %v", n, err)
	}
	if st, err := ps.Stats(ctx, "dedup"); err != nil || st.Messages != 1 {
		t.Fatalf("dedup stats: %+v %v", st, err)
	}
	a.fail("POST", "/v1/pubsub/retention", `{"topic":"dedup","max_messages":-1}`, 400, "invalid_argument")
	a.fail("POST", "/v1/pubsub/retention", `{"topic":"dedup","max_age_ms":9223372036854775807}`, 400, "invalid_argument")
	a.fail("POST", "/v1/pubsub/publish", `{"topic":"dedup","msg_id":"`+strings.Repeat("i", 300)+`"}`, 400, "invalid_argument")
}
