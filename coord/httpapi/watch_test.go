package httpapi_test

import (
	"bytes"
	"fmt"
	"testing"
)

type (
	watchCreated struct {
		Header  header `json:"header"`
		Created bool   `json:"created"`
	}
	watchLine struct {
		Header          header       `json:"header"`
		Events          []watchEvent `json:"events"`
		CompactRevision int64        `json:"compact_revision"`
	}
	watchEvent struct {
		Type   string `json:"type"`
		KV     kv     `json:"kv"`
		PrevKV *kv    `json:"prev_kv"`
	}
)

// created reads a watch's first line.
func (s *ndjson) created() header {
	s.t.Helper()
	var c watchCreated
	if line := s.decode(&c); !c.Created || c.Header.Revision <= 0 || c.Header.Member == "" {
		s.t.Fatalf("first line of a watch: %s", line)
	}
	return c.Header
}

// events reads watch lines until n events have arrived; a line must not
// carry more than are asked for.
func (s *ndjson) events(n int) []watchEvent {
	s.t.Helper()
	var out []watchEvent
	for len(out) < n {
		var l watchLine
		line := s.decode(&l)
		if l.Events == nil || l.CompactRevision != 0 || l.Header.Revision <= 0 {
			s.t.Fatalf("watch line: %s", line)
		}
		out = append(out, l.Events...)
	}
	if len(out) != n {
		s.t.Fatalf("got %d events, want %d", len(out), n)
	}
	return out
}

func describe(evs []watchEvent) string {
	var b bytes.Buffer
	for _, e := range evs {
		fmt.Fprintf(&b, "%s %s=%s@%d", e.Type, e.KV.Key, e.KV.Value, e.KV.ModRevision)
		if e.PrevKV != nil {
			fmt.Fprintf(&b, " (was %s)", e.PrevKV.Value)
		}
		b.WriteString("; ")
	}
	return b.String()
}

func testWatch(t *testing.T, api []*client) {
	a, b := api[0].with(t), api[1].with(t)
	put := func(k, v string) int64 {
		var p putResp
		a.call("/v1/kv/put", map[string]any{"key": b64(k), "value": b64(v)}, 200, &p)
		return p.Header.Revision
	}

	// History from a revision: exactly the events from it on.
	put("/w/a", "1")
	r2 := put("/w/b", "2")
	r3 := put("/w/a", "3")
	var d deleteResp
	a.call("/v1/kv/deleterange", map[string]any{"key": b64("/w/b")}, 200, &d)
	r4 := d.Header.Revision
	w := b.open("/v1/watch", map[string]any{"key": b64("/w/"), "prefix": true, "start_revision": r2, "prev_kv": true})
	// The header is m1's replica's, which may not have applied r4 yet.
	if h := w.created(); h.Member != "m1" || h.Shard != 0 || h.RaftTerm == 0 {
		t.Fatalf("created header %+v, want m1's", h)
	}
	evs := w.events(3)
	want := fmt.Sprintf("PUT /w/b=2@%d; PUT /w/a=3@%d (was 1); DELETE /w/b=@%d (was 2); ", r2, r3, r4)
	if got := describe(evs); got != want {
		t.Fatalf("events from revision %d:\n got %s\nwant %s", r2, got, want)
	}
	// Then live, with nothing in between.
	r5 := put("/w/c", "5")
	if got := describe(w.events(1)); got != fmt.Sprintf("PUT /w/c=5@%d; ", r5) {
		t.Fatalf("live event: %s", got)
	}
	w.close()

	// Resume: a client that went away asks for last seen + 1, and gets
	// what it missed, once, then live events.
	put("/w/d", "6")
	put("/w/e", "7")
	w = b.open("/v1/watch", map[string]any{"key": b64("/w/"), "prefix": true, "start_revision": r5 + 1})
	w.created()
	got := describe(w.events(2))
	r8 := put("/w/f", "8")
	got += describe(w.events(1))
	if want := fmt.Sprintf("PUT /w/d=6@%d; PUT /w/e=7@%d; PUT /w/f=8@%d; ", r5+1, r5+2, r8); got != want {
		t.Fatalf("resumed watch:\n got %s\nwant %s", got, want)
	}
	w.close()

	// Without start_revision: every change after the created revision.
	w = b.open("/v1/watch", map[string]any{"key": b64("/w/"), "prefix": true, "filters": []string{"nodelete"}})
	from := w.created()
	a.call("/v1/kv/deleterange", map[string]any{"key": b64("/w/"), "prefix": true}, 200, nil)
	r := put("/w/g", "9")
	if got := describe(w.events(1)); got != fmt.Sprintf("PUT /w/g=9@%d; ", r) || r <= from.Revision {
		t.Fatalf("filtered watch after %d: %s", from.Revision, got)
	}
	w.close()

	// Binary keys and values, one key.
	key := []byte{0x00, 0xff, '/', 0x80, '\n'}
	value := []byte{'"', 0x00, 0xfe}
	w = b.open("/v1/watch", map[string]any{"key": key})
	w.created()
	a.call("/v1/kv/put", map[string]any{"key": key, "value": value}, 200, nil)
	a.call("/v1/kv/put", map[string]any{"key": append(append([]byte{}, key...), 0), "value": value}, 200, nil) // not watched
	a.call("/v1/kv/deleterange", map[string]any{"key": key}, 200, nil)
	evs = w.events(2)
	if evs[0].Type != "PUT" || !bytes.Equal(evs[0].KV.Key, key) || !bytes.Equal(evs[0].KV.Value, value) || evs[0].KV.Version != 1 ||
		evs[1].Type != "DELETE" || !bytes.Equal(evs[1].KV.Key, key) {
		t.Fatalf("binary key events: %+v", evs)
	}
	w.close()

	// A compacted start revision: the stream says so, then ends.
	a.call("/v1/kv/compact", map[string]any{"shard": 0, "revision": r}, 200, nil)
	w = b.open("/v1/watch", map[string]any{"key": b64("/w/"), "prefix": true, "start_revision": 1})
	w.created()
	var l watchLine
	if line := w.decode(&l); l.CompactRevision <= 1 || len(l.Events) != 0 || l.Events == nil {
		t.Fatalf("compaction line: %s", line)
	}
	w.end("compacted")

	for _, body := range []string{
		`{"key":""}`,
		`{"key":"` + b64("/w/") + `","filters":["noputs"]}`,
		`{"key":"` + b64("/w/") + `","prefix":true,"range_end":"` + b64("/x") + `"}`,
		`{"key":"` + b64("/w/b") + `","range_end":"` + b64("/w/a") + `"}`,
		`{"key":"` + b64("/w/") + `","start_revision":-1}`,
		`{"key":"` + b64("/w/") + `","startrevision":5}`,
	} {
		a.fail("POST", "/v1/watch", body, 400, "invalid_argument")
	}
}
