package watch

import (
	"fmt"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// The hub hands a batch's events to the watchers of each changed key and to
// the range watchers, every event a watcher wants and no other, several
// events of one key in one batch included; removed watchers get nothing.
func TestHubHandsEachWatcherItsEvents(t *testing.T) {
	h := NewHub("m1", nil)
	mk := func(key, end string) *Watcher {
		w := &Watcher{h: h, f: Filter{Key: key, End: end}, signal: make(chan struct{}, 1), next: 1}
		h.mu.Lock()
		h.index(w)
		h.mu.Unlock()
		return w
	}
	a1, a2, b, ac, gone := mk("a", ""), mk("a", ""), mk("b", ""), mk("a", "c"), mk("b", "")
	h.remove(gone)
	if h.Len() != 4 || len(h.byKey["b"]) != 1 || len(h.ranges) != 1 {
		t.Fatalf("after remove: size %d, watchers of b %d, ranges %d", h.Len(), len(h.byKey["b"]), len(h.ranges))
	}
	ev := func(key string, rev int64, del bool) sm.Event {
		return sm.Event{Delete: del, KV: &sm.KV{Key: key, ModRevision: rev}}
	}
	h.Applied(5, []sm.Event{ev("a", 3, false), ev("b", 3, false), ev("a", 4, true), ev("c", 5, false)})
	got := func(w *Watcher) string {
		out := ""
		for _, p := range w.pending {
			for _, e := range p.events {
				out += fmt.Sprintf("%s@%d/%v ", e.KV.Key, p.rev, e.Delete)
			}
		}
		return out
	}
	for _, tc := range []struct {
		w    *Watcher
		want string
	}{
		{a1, "a@3/false a@4/true "},
		{a2, "a@3/false a@4/true "},
		{b, "b@3/false "},
		{ac, "a@3/false b@3/false a@4/true "},
		{gone, ""},
	} {
		if g := got(tc.w); g != tc.want {
			t.Errorf("watcher of %q..%q: %q, want %q", tc.w.f.Key, tc.w.f.End, g, tc.want)
		}
	}
	if h.latest.Load() != 5 {
		t.Errorf("hub latest %d, want 5", h.latest.Load())
	}
	h.remove(a1)
	h.remove(a2)
	if _, ok := h.byKey["a"]; ok || h.Len() != 2 {
		t.Errorf("after removing a's watchers: byKey[a] present %v, size %d", ok, h.Len())
	}
}
