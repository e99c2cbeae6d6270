package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/coordkit/coordkit/coord"
)

type watchRequest struct {
	Key            []byte   `json:"key"`
	RangeEnd       []byte   `json:"range_end"`
	Prefix         bool     `json:"prefix"`
	StartRevision  int64    `json:"start_revision"`
	PrevKV         bool     `json:"prev_kv"`
	Filters        []string `json:"filters"`
	ProgressNotify bool     `json:"progress_notify"`
}

type watchCreated struct {
	Header  header `json:"header"`
	Created bool   `json:"created"`
}

type watchLine struct {
	Header          header       `json:"header"`
	Events          []watchEvent `json:"events"`
	CompactRevision int64        `json:"compact_revision,omitempty"`
}

type watchEvent struct {
	Type   string    `json:"type"`
	KV     *keyValue `json:"kv"`
	PrevKV *keyValue `json:"prev_kv"`
}

func (req *watchRequest) options() ([]coord.OpOption, error) {
	opts, err := span(req.Prefix, req.RangeEnd)
	if err != nil {
		return nil, err
	}
	if req.StartRevision < 0 {
		return nil, fmt.Errorf("%w: start_revision %d is negative", coord.ErrInvalidOption, req.StartRevision)
	}
	if req.PrevKV {
		opts = append(opts, coord.WithPrevKV())
	}
	for _, f := range req.Filters {
		switch f {
		case "noput":
			opts = append(opts, coord.WithFilterPut())
		case "nodelete":
			opts = append(opts, coord.WithFilterDelete())
		default:
			return nil, fmt.Errorf("%w: filter %q (want noput or nodelete)", coord.ErrInvalidOption, f)
		}
	}
	return opts, nil
}

// watch streams the changes to a key or range. Its first line names the
// revision it starts after; without start_revision it delivers exactly the
// changes after that revision.
func (a *api) watch(w http.ResponseWriter, r *http.Request, req *watchRequest) {
	opts, err := req.options()
	if err != nil {
		writeCoordError(w, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	key := string(req.Key)
	created, compactRev, err := a.shardHeader(ctx, key)
	if err != nil {
		writeCoordError(w, err)
		return
	}
	if req.ProgressNotify {
		opts = append(opts, coord.WithProgressNotify(a.heartbeat))
	}
	start := req.StartRevision
	if start == 0 {
		start = created.Revision + 1
	}
	wch := a.n.Watch(ctx, key, append(opts, coord.WithRev(coord.Revision(start)))...)

	// Watch puts the error of a request it refuses in the channel before
	// it returns: answer that with a status rather than a stream. A
	// compacted start revision is answered on the stream, as a compaction
	// during the watch is, so that clients handle both one way.
	var first *coord.WatchResponse
	select {
	case resp, ok := <-wch:
		if ok && resp.Err() != nil && !errors.Is(resp.Err(), coord.ErrCompacted) {
			writeCoordError(w, resp.Err())
			return
		}
		if ok {
			first = &resp
		}
	default:
	}

	st := a.newStream(w, r)
	defer st.stop()
	if st.send(watchCreated{Header: created, Created: true}) != nil {
		return
	}
	on := func(resp coord.WatchResponse) bool {
		if err := resp.Err(); err != nil {
			if errors.Is(err, coord.ErrCompacted) {
				line := watchLine{Header: toHeader(resp.Header), Events: []watchEvent{}, CompactRevision: int64(resp.CompactRevision)}
				if resp.Header.Member == "" {
					line.Header = created
				}
				if line.CompactRevision == 0 {
					// The refusal of a compacted start revision does not
					// carry it; the shard's status does.
					if _, cr, err := a.shardHeader(ctx, key); err == nil {
						line.CompactRevision = cr
					} else {
						line.CompactRevision = compactRev
					}
				}
				if st.send(line) != nil {
					return false
				}
			}
			st.fail(err)
			return false
		}
		line := watchLine{Header: toHeader(resp.Header), Events: make([]watchEvent, 0, len(resp.Events))}
		for _, ev := range resp.Events {
			line.Events = append(line.Events, watchEvent{Type: eventType(ev.Type), KV: toKV(ev.KV), PrevKV: toKV(ev.PrevKV)})
		}
		return st.send(line) == nil
	}
	if first != nil && !on(*first) {
		return
	}
	pump(ctx, st, (<-chan coord.WatchResponse)(wch), on)
}

func eventType(t coord.EventType) string {
	if t == coord.EventDelete {
		return "DELETE"
	}
	return "PUT"
}

// shardHeader describes, from this member's replica, the shard holding key:
// its header and compaction point.
func (a *api) shardHeader(ctx context.Context, key string) (header, int64, error) {
	st, err := a.n.Status(ctx)
	if err != nil {
		return header{}, 0, err
	}
	si := a.n.ShardOf(key)
	for _, s := range st.Shards {
		if s.Shard == si {
			return header{Shard: si, Revision: int64(s.Revision), RaftTerm: s.Term, Member: st.Member}, int64(s.CompactRevision), nil
		}
	}
	return header{}, 0, fmt.Errorf("httpapi: no status for shard %d", si)
}
