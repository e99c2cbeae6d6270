package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/coordkit/coordkit/coord/pubsub"
)

// DefaultTopicsPrefix is where the API keeps topics when a request names
// no prefix. The handler does not apply retention (see Retention in the
// package documentation): the member program runs pubsub's RunRetention
// for this prefix.
const DefaultTopicsPrefix = "/topics"

// maxPubSubs bounds the PubSub values the handler keeps, one per prefix.
// A PubSub holds the leases of its message-ID de-duplication, so publishes
// through the API share one per prefix; past the bound (prefixes are
// chosen by clients) a fresh value serves the request.
const maxPubSubs = 64

func (a *api) pubsub(prefix string) *pubsub.PubSub {
	if prefix == "" {
		prefix = DefaultTopicsPrefix
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.pubsubs[prefix]; p != nil {
		return p
	}
	p := pubsub.New(a.n, prefix)
	if len(a.pubsubs) < maxPubSubs {
		a.pubsubs[prefix] = p
	}
	return p
}

type publishRequest struct {
	Prefix  string `json:"prefix"`
	Topic   string `json:"topic"`
	Payload []byte `json:"payload"`
	MsgID   string `json:"msg_id"`
}

type publishResponse struct {
	Offset int64 `json:"offset"`
}

func (a *api) publish(ctx context.Context, req *publishRequest) (any, error) {
	payload := req.Payload
	if payload == nil {
		payload = []byte{}
	}
	var opts []pubsub.PublishOption
	if req.MsgID != "" {
		opts = append(opts, pubsub.WithMsgID(req.MsgID))
	}
	off, err := a.pubsub(req.Prefix).Publish(ctx, req.Topic, payload, opts...)
	if err != nil {
		return nil, err
	}
	return publishResponse{Offset: int64(off)}, nil
}

type retentionRequest struct {
	Prefix            string `json:"prefix"`
	Topic             string `json:"topic"`
	MaxMessages       int    `json:"max_messages"`
	MaxBytes          int64  `json:"max_bytes"`
	MaxAgeMS          int64  `json:"max_age_ms"`
	DuplicateWindowMS int64  `json:"duplicate_window_ms"`
}

// setRetention replaces a topic's retention (pubsub.PubSub.SetRetention).
func (a *api) setRetention(ctx context.Context, req *retentionRequest) (any, error) {
	if req.MaxAgeMS > math.MaxInt64/int64(time.Millisecond) || req.DuplicateWindowMS > math.MaxInt64/int64(time.Millisecond) {
		return nil, fmt.Errorf("%w: max_age_ms or duplicate_window_ms too large", pubsub.ErrInvalid)
	}
	r := pubsub.Retention{MaxMessages: req.MaxMessages, MaxBytes: req.MaxBytes,
		MaxAge: time.Duration(req.MaxAgeMS) * time.Millisecond, DuplicateWindow: time.Duration(req.DuplicateWindowMS) * time.Millisecond}
	if err := a.pubsub(req.Prefix).SetRetention(ctx, req.Topic, r); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type statsRequest struct {
	Prefix string `json:"prefix"`
	Topic  string `json:"topic"`
}

type statsResponse struct {
	Messages int   `json:"messages"`
	Bytes    int64 `json:"bytes"`
	First    int64 `json:"first"`
	Last     int64 `json:"last"`
	Removed  int64 `json:"removed"`
}

// stats answers a topic's counters (pubsub.PubSub.Stats).
func (a *api) stats(ctx context.Context, req *statsRequest) (any, error) {
	st, err := a.pubsub(req.Prefix).Stats(ctx, req.Topic)
	if err != nil {
		return nil, err
	}
	return statsResponse{Messages: st.Messages, Bytes: st.Bytes, First: int64(st.First), Last: int64(st.Last), Removed: st.Removed}, nil
}

type subscribeRequest struct {
	Prefix string     `json:"prefix"`
	Topic  string     `json:"topic"`
	From   string     `json:"from"`
	Offset *int64     `json:"offset"`
	Time   *time.Time `json:"time"`
}

type messageLine struct {
	Message message `json:"message"`
}

type message struct {
	Topic   string    `json:"topic"`
	Offset  int64     `json:"offset"`
	Time    time.Time `json:"time"`
	Payload []byte    `json:"payload"`
}

func (req *subscribeRequest) options() ([]pubsub.SubscribeOption, error) {
	var opts []pubsub.SubscribeOption
	switch req.From {
	case "", "now":
	case "earliest":
		opts = append(opts, pubsub.FromEarliest())
	default:
		return nil, fmt.Errorf("%w: from %q (want now or earliest)", pubsub.ErrInvalid, req.From)
	}
	if req.Offset != nil {
		if *req.Offset <= 0 {
			return nil, fmt.Errorf("%w: offset %d: offsets are positive", pubsub.ErrInvalid, *req.Offset)
		}
		opts = append(opts, pubsub.FromOffset(pubsub.Offset(*req.Offset)))
	}
	if req.Time != nil {
		opts = append(opts, pubsub.FromTime(*req.Time))
	}
	given := len(opts)
	if req.From == "now" {
		given++
	}
	if given > 1 {
		return nil, fmt.Errorf("%w: give one of from, offset and time", pubsub.ErrInvalid)
	}
	return opts, nil
}

// subscribe streams a topic's messages from the chosen start.
func (a *api) subscribe(w http.ResponseWriter, r *http.Request, req *subscribeRequest) {
	opts, err := req.options()
	if err != nil {
		writeCoordError(w, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sub := a.pubsub(req.Prefix).Subscribe(ctx, req.Topic, opts...)
	// Subscribe resolves its start before it returns, and a failure to is
	// already in the channel: a malformed request or an unreachable leader
	// is answered with a status. An offset no longer retained is answered
	// on the stream, as the contract has it.
	var first *pubsub.Delivery
	select {
	case d, ok := <-sub:
		if ok && d.Err != nil && !errors.Is(d.Err, pubsub.ErrOffsetOutOfRange) {
			writeCoordError(w, d.Err)
			return
		}
		if ok {
			first = &d
		}
	default:
	}
	st := a.newStream(w, r)
	defer st.stop()
	if st.start() != nil {
		return
	}
	on := func(d pubsub.Delivery) bool {
		if d.Err != nil {
			st.fail(d.Err)
			return false
		}
		m := message{Topic: d.Topic, Offset: int64(d.Offset), Time: d.Time, Payload: d.Payload}
		if m.Payload == nil {
			m.Payload = []byte{}
		}
		return st.send(messageLine{Message: m}) == nil
	}
	if first != nil && !on(*first) {
		return
	}
	pump(ctx, st, sub, on)
}
