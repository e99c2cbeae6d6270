package watch

import (
	"context"
	"fmt"
	"testing"
	"time"

	dbsm "github.com/lni/dragonboat/v4/statemachine"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// replica is a state machine whose events go to a hub, as in a member.
type replica struct {
	m     *sm.Machine
	h     *Hub
	index uint64
}

type hubListener struct{ *Hub }

func (hubListener) LeaseRenewed(int64, int64, uint64) {}
func (hubListener) LeaseGone(int64)                   {}
func (hubListener) LeasesReset([]sm.LeaseInfo)        {}
func (hubListener) HashCheck(uint64, *sm.View)        {}

func newReplica() *replica {
	r := &replica{}
	r.h = NewHub("m1", func() *sm.View { return r.m.View() })
	r.m = sm.New(hubListener{r.h})
	return r
}

func (r *replica) apply(t *testing.T, cmds ...*sm.Command) {
	t.Helper()
	var ents []dbsm.Entry
	for _, c := range cmds {
		r.index++
		ents = append(ents, dbsm.Entry{Index: r.index, Cmd: sm.EncodeCommand(c)})
	}
	if _, err := r.m.Update(ents); err != nil {
		t.Fatal(err)
	}
}

func put(key string) *sm.Command {
	return &sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpPut, Key: key, Value: []byte("v")}}}}
}

// collect runs w until it has delivered want events, or it ends, and
// returns what it delivered as "key@rev" lines, and the batch that ended it.
func collect(t *testing.T, w *Watcher, want int) (got []string, end Batch) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w.Run(ctx, nil, 0, func(b Batch) bool {
		if b.Compacted > 0 || b.Closed {
			end = b
			return false
		}
		last := int64(0)
		for _, ev := range b.Events {
			if ev.KV.ModRevision < last {
				t.Errorf("events out of order: %d after %d", ev.KV.ModRevision, last)
			}
			last = ev.KV.ModRevision
			got = append(got, fmt.Sprintf("%s@%d", ev.KV.Key, ev.KV.ModRevision))
		}
		if b.Rev < last {
			t.Errorf("batch revision %d, before its last event's %d", b.Rev, last)
		}
		return len(got) < want
	})
	return got, end
}

// A watcher from an old revision reads history, then follows live events,
// every event once and in order, including those applied while it switched.
func TestWatcherReplaysHistoryThenFollows(t *testing.T) {
	r := newReplica()
	for i := range 5 {
		r.apply(t, put(fmt.Sprintf("/a/%d", i)))
	}
	// A new store is at revision 1: the puts are revisions 2 to 6.
	w, compacted := r.h.Add(Filter{Key: "/a/", End: "/a0"}, 3)
	if w == nil || compacted != 0 {
		t.Fatalf("Add from revision 3: %v, compacted %d", w, compacted)
	}
	done := make(chan []string)
	go func() {
		got, _ := collect(t, w, 4+3)
		done <- got
	}()
	for i := range 3 {
		r.apply(t, put(fmt.Sprintf("/a/%d", 10+i)), put("/b/x"))
	}
	got := <-done
	want := []string{"/a/1@3", "/a/2@4", "/a/3@5", "/a/4@6", "/a/10@7", "/a/11@9", "/a/12@11"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	if r.h.Len() != 0 {
		t.Fatalf("%d watchers left after Run returned", r.h.Len())
	}
}

// A watcher that falls more than maxPendingEvents behind is switched to
// history, and still delivers every event; one whose next revision is
// compacted away first ends with the oldest revision available.
func TestWatcherBehindCatchesUpOrEndsCompacted(t *testing.T) {
	r := newReplica()
	w, _ := r.h.Add(Filter{Key: "/k"}, 0)
	for i := range maxPendingEvents + 10 {
		r.apply(t, put("/k"))
		if i == 0 && !w.lagging && w.npend != 1 {
			t.Fatalf("first event not queued: %d pending", w.npend)
		}
	}
	if !w.lagging {
		t.Fatal("a watcher over maxPendingEvents behind is not reading history")
	}
	got, end := collect(t, w, maxPendingEvents+10)
	if len(got) != maxPendingEvents+10 || end.Compacted != 0 {
		t.Fatalf("delivered %d events (end %+v), want %d", len(got), end, maxPendingEvents+10)
	}

	w2, _ := r.h.Add(Filter{Key: "/k"}, 3)
	r.apply(t, &sm.Command{Kind: sm.CmdCompact, Revision: 100})
	got, end = collect(t, w2, 1)
	if len(got) != 0 || end.Compacted != 100 || end.Rev != 3 {
		t.Fatalf("compacted under the watcher: delivered %d, end %+v, want Compacted 100 at revision 3", len(got), end)
	}
	if w3, compacted := r.h.Add(Filter{Key: "/k"}, 50); w3 != nil || compacted != 100 {
		t.Fatalf("Add below the compaction point: %v, compacted %d, want nil, 100", w3, compacted)
	}
}

// A snapshot recovered under a watcher sends it to history for what it
// missed; stop ends it with a Closed batch; progress notifications carry
// the revision up to which nothing is pending.
func TestWatcherRecoveredStopAndProgress(t *testing.T) {
	r := newReplica()
	w, _ := r.h.Add(Filter{Key: "/p", NoDelete: true}, 0)
	r.apply(t, put("/p"))
	r.h.Recovered(r.m.View())
	if !w.lagging || w.npend != 0 {
		t.Fatal("Recovered left the watcher on queued events")
	}
	stop := make(chan struct{})
	var batches []Batch
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w.Run(ctx, stop, 5*time.Millisecond, func(b Batch) bool {
		batches = append(batches, b)
		if len(b.Events) == 0 && !b.Closed && len(batches) >= 3 {
			close(stop)
		}
		return true
	})
	if len(batches) < 3 || len(batches[0].Events) != 1 || batches[0].Rev != 2 {
		t.Fatalf("batches %+v: want the put at 2, then progress", batches)
	}
	for _, b := range batches[1 : len(batches)-1] {
		if len(b.Events) != 0 || b.Rev != 2 {
			t.Fatalf("progress batch %+v, want none at revision 2", b)
		}
	}
	if last := batches[len(batches)-1]; !last.Closed {
		t.Fatalf("last batch %+v, want Closed", last)
	}
}

// Deliver sends converted batches, ends after a batch marked last, and
// tells a reader with room that the member closed.
func TestDeliver(t *testing.T) {
	r := newReplica()
	r.apply(t, put("/d"), put("/d"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conv := func(b Batch) (string, bool) {
		if b.Compacted > 0 {
			return fmt.Sprintf("compacted %d", b.Compacted), true
		}
		return fmt.Sprintf("%d events to %d", len(b.Events), b.Rev), false
	}
	out := make(chan string, 8)
	w, _ := r.h.Add(Filter{Key: "/d"}, 2)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		Deliver(ctx, w, stop, 0, out, conv, "closed")
		close(done)
	}()
	if got := <-out; got != "2 events to 3" {
		t.Fatalf("first batch %q", got)
	}
	close(stop)
	<-done
	if got := <-out; got != "closed" {
		t.Fatalf("after stop: %q, want closed", got)
	}
	// A compaction under a watcher is its last batch.
	w2, _ := r.h.Add(Filter{Key: "/d"}, 2)
	r.apply(t, &sm.Command{Kind: sm.CmdCompact, Revision: 3})
	r.h.Recovered(r.m.View()) // sends the watcher back to history, below the compaction
	Deliver(ctx, w2, nil, 0, out, conv, "closed")
	if got := <-out; got != "compacted 3" {
		t.Fatalf("compacted watcher: %q", got)
	}
}
