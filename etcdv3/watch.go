package etcdv3

import (
	"context"
	"errors"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/coordkit/coordkit/coord"
)

type watchServer struct {
	*Server
	pb.UnimplementedWatchServer
}

// progressInterval is how often a watch created with progress_notify gets
// a progress notification while it has no event (etcd's default).
const progressInterval = 10 * time.Minute

// Watch serves one bidirectional stream carrying many watchers: each
// create request starts a coord Watch, each cancel request ends one, and a
// progress request is answered with a revision up to which every watcher
// of the stream has sent all its events.
func (s watchServer) Watch(stream pb.Watch_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	st := &watchStream{s: s.Server, stream: stream, watchers: map[int64]*watcher{}}
	defer st.wg.Wait()
	defer cancel()
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil // the client is gone or closed its side
		}
		switch r := req.RequestUnion.(type) {
		case *pb.WatchRequest_CreateRequest:
			if err := st.create(ctx, r.CreateRequest); err != nil {
				return err
			}
		case *pb.WatchRequest_CancelRequest:
			st.cancel(r.CancelRequest.WatchId)
		case *pb.WatchRequest_ProgressRequest:
			if err := st.progress(ctx); err != nil {
				return err
			}
		}
	}
}

// watchStream is one Watch stream's state.
type watchStream struct {
	s      *Server
	stream pb.Watch_WatchServer
	wg     sync.WaitGroup

	sendMu sync.Mutex // gRPC streams take one Send at a time

	mu       sync.Mutex
	watchers map[int64]*watcher
	nextID   int64
}

type watcher struct {
	cancel  context.CancelFunc
	lastRev int64 // every event up to it has been sent
}

func (st *watchStream) send(r *pb.WatchResponse) error {
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	return st.stream.Send(r)
}

// create starts a watcher, answering with its ID (Created), or, for a
// request coordkit cannot serve, with a response that says so (Created and
// Canceled, as etcd answers a bad create).
func (st *watchStream) create(ctx context.Context, r *pb.WatchCreateRequest) error {
	st.mu.Lock()
	id := r.WatchId
	if id == 0 || id == -1 { // clientv3 sends 0 for "any"
		for {
			id = st.nextID
			st.nextID++
			if _, used := st.watchers[id]; !used {
				break
			}
		}
	} else if _, used := st.watchers[id]; used {
		st.mu.Unlock()
		return st.send(&pb.WatchResponse{Header: st.s.emptyHeader(), WatchId: id, Created: true, Canceled: true,
			CancelReason: "coordkit: watch ID in use"})
	}
	st.mu.Unlock()
	refuse := func(reason string) error {
		return st.send(&pb.WatchResponse{Header: st.s.emptyHeader(), WatchId: id, Created: true, Canceled: true, CancelReason: reason})
	}
	if len(r.Key) == 0 {
		return refuse("etcdserver: key is not provided")
	}
	rng, empty := keyRange(r.Key, r.RangeEnd)
	if empty {
		return refuse("coordkit: empty watch range")
	}
	opts := append([]coord.OpOption(nil), rng...)
	if r.StartRevision > 0 {
		opts = append(opts, coord.WithRev(coord.Revision(r.StartRevision)))
	}
	if r.PrevKv {
		opts = append(opts, coord.WithPrevKV())
	}
	if r.ProgressNotify {
		opts = append(opts, coord.WithProgressNotify(progressInterval))
	}
	for _, f := range r.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			opts = append(opts, coord.WithFilterPut())
		case pb.WatchCreateRequest_NODELETE:
			opts = append(opts, coord.WithFilterDelete())
		}
	}
	// The header of Created carries the revision the watch starts after
	// (without a start revision): this member's, read before the watch
	// starts, so no event at or before it is missed.
	g, err := st.s.n.Get(ctx, string(r.Key), append([]coord.OpOption{coord.WithSerializable(), coord.WithCountOnly()}, rng...)...)
	if err != nil {
		return refuse(toGRPC(err).Error())
	}
	if g.Header.Shard == coord.ShardAll {
		return refuse(errSpansShards("the watch").Error())
	}
	if r.StartRevision == 0 {
		opts = append(opts, coord.WithRev(g.Header.Revision+1))
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &watcher{cancel: cancel, lastRev: int64(g.Header.Revision)}
	if r.StartRevision > 0 {
		w.lastRev = r.StartRevision - 1
	}
	st.mu.Lock()
	st.watchers[id] = w
	st.mu.Unlock()
	ch := st.s.n.Watch(wctx, string(r.Key), opts...)
	if err := st.send(&pb.WatchResponse{Header: st.s.header(g.Header), WatchId: id, Created: true}); err != nil {
		cancel()
		return err
	}
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		st.run(wctx, id, w, ch)
	}()
	return nil
}

// run forwards a watcher's responses to the stream until it ends.
func (st *watchStream) run(ctx context.Context, id int64, w *watcher, ch coord.WatchChan) {
	for wr := range ch {
		if err := wr.Err(); err != nil {
			resp := &pb.WatchResponse{Header: st.s.header(wr.Header), WatchId: id, Canceled: true}
			var ce *coord.CompactedError
			if errors.As(err, &ce) {
				resp.CompactRevision = int64(ce.Oldest)
			} else {
				resp.CancelReason = toGRPC(err).Error()
			}
			if ctx.Err() == nil {
				st.send(resp)
			}
			st.forget(id)
			return
		}
		resp := &pb.WatchResponse{Header: st.s.header(wr.Header), WatchId: id, Events: make([]*mvccpb.Event, len(wr.Events))}
		for i, e := range wr.Events {
			ev := &mvccpb.Event{Type: mvccpb.PUT, Kv: kv(e.KV), PrevKv: kv(e.PrevKV)}
			if e.Type == coord.EventDelete {
				ev.Type = mvccpb.DELETE
			}
			resp.Events[i] = ev
		}
		if err := st.send(resp); err != nil {
			return
		}
		st.mu.Lock()
		w.lastRev = max(w.lastRev, int64(wr.Header.Revision))
		st.mu.Unlock()
	}
}

func (st *watchStream) forget(id int64) {
	st.mu.Lock()
	delete(st.watchers, id)
	st.mu.Unlock()
}

// cancel ends a watcher and says so.
func (st *watchStream) cancel(id int64) {
	st.mu.Lock()
	w, ok := st.watchers[id]
	delete(st.watchers, id)
	st.mu.Unlock()
	if !ok {
		return
	}
	w.cancel()
	st.send(&pb.WatchResponse{Header: st.s.emptyHeader(), WatchId: id, Canceled: true})
}

// progress answers a progress request: a response with no watch ID
// (clientv3's InvalidWatchID, -1) whose revision every watcher of the
// stream has sent all its events up to; the member's own revision when
// the stream has no watcher.
func (st *watchStream) progress(ctx context.Context) error {
	st.mu.Lock()
	rev := int64(-1)
	for _, w := range st.watchers {
		if rev < 0 || w.lastRev < rev {
			rev = w.lastRev
		}
	}
	st.mu.Unlock()
	h := st.s.emptyHeader()
	if rev < 0 {
		g, err := st.s.n.Get(ctx, "\x00", coord.WithFromKey(), coord.WithCountOnly(), coord.WithSerializable())
		if err == nil && g.Header.Shard != coord.ShardAll {
			h = st.s.header(g.Header)
		}
	} else {
		h.Revision = rev
	}
	return st.send(&pb.WatchResponse{Header: h, WatchId: -1})
}
