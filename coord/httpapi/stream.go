package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// cleanupTimeout bounds the release of what a stream held once the stream
// has ended: its request context is gone by then, so a fresh one is used.
const cleanupTimeout = 5 * time.Second

// heartbeatLine is sent on a stream that has been idle for the heartbeat
// interval.
var heartbeatLine = []byte("{\"heartbeat\":true}\n")

// stream writes one NDJSON response. It is used by the request's goroutine
// only. Every write has its own deadline, so that a client that stops
// reading is disconnected after StreamWriteTimeout instead of pinning the
// goroutine and what the stream holds.
type stream struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	http1    bool
	timeout  time.Duration
	interval time.Duration
	beat     *time.Timer // fires when the stream has been idle for interval
	started  bool
	err      error // the first failed write: the stream is over
}

func (a *api) newStream(w http.ResponseWriter, r *http.Request) *stream {
	return &stream{
		w: w, rc: http.NewResponseController(w), http1: r.ProtoMajor == 1,
		timeout: a.writeTimeout, interval: a.heartbeat, beat: time.NewTimer(a.heartbeat),
	}
}

func (s *stream) stop() { s.beat.Stop() }

// start sends the status and headers, for streams whose first line may be
// long in coming: a client learns at once that its request was accepted.
func (s *stream) start() error { return s.write(nil) }

// send writes v as one line and flushes it.
func (s *stream) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write(append(b, '\n'))
}

func (s *stream) heartbeat() error { return s.write(heartbeatLine) }

// fail ends the stream with err: an error line once the stream has started,
// otherwise an ordinary error response.
func (s *stream) fail(err error) {
	if !s.started {
		writeCoordError(s.w, err)
		return
	}
	_, d := detail(err)
	_ = s.send(errorBody{Error: d})
}

func (s *stream) write(line []byte) error {
	if s.err != nil {
		return s.err
	}
	s.err = s.writeLine(line)
	return s.err
}

func (s *stream) writeLine(line []byte) error {
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if !s.started {
		s.started = true
		h := s.w.Header()
		h.Set("Content-Type", "application/x-ndjson")
		h.Set("X-Content-Type-Options", "nosniff")
		if s.http1 {
			// The write deadline stays on the connection after the handler
			// returns, and net/http clears it only when the server has a
			// WriteTimeout: a request reusing the connection would fail.
			// (In HTTP/2 the deadline is the stream's, and "Connection:
			// close" would shut down every stream of the connection.)
			h.Set("Connection", "close")
		}
		s.w.WriteHeader(http.StatusOK)
	}
	if len(line) > 0 {
		if _, err := s.w.Write(line); err != nil {
			return err
		}
	}
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	s.beat.Reset(s.interval)
	return nil
}

// pump runs a stream that forwards what src delivers: each item goes to on,
// which returns false to end the stream. It sends heartbeats while src is
// quiet, and returns when ctx ends, on returns false, a write fails, or src
// closes (with an unavailable error line if ctx is still live: src closes
// on its own only when the Node does).
func pump[T any](ctx context.Context, st *stream, src <-chan T, on func(T) bool) {
	for {
		select {
		case <-ctx.Done():
			failIfShuttingDown(ctx, st)
			return
		case <-st.beat.C:
			if st.heartbeat() != nil {
				return
			}
		case v, ok := <-src:
			if !ok {
				if ctx.Err() == nil {
					st.fail(coord.ErrClosed)
				}
				return
			}
			if !on(v) {
				return
			}
		}
	}
}

// ErrShuttingDown is the cause to cancel the server's BaseContext with when
// it shuts down: every open stream then ends with an "unavailable" error
// line saying so, rather than a connection cut with no reason, and
// http.Server.Shutdown does not wait for streams that would never end.
//
//	base, stop := context.WithCancelCause(context.Background())
//	srv := &http.Server{Handler: h, BaseContext: func(net.Listener) context.Context { return base }}
//	...
//	stop(httpapi.ErrShuttingDown)
//	srv.Shutdown(ctx)
var ErrShuttingDown = errors.New("httpapi: server shutting down")

// failIfShuttingDown ends st with ErrShuttingDown when that is why ctx
// ended.
func failIfShuttingDown(ctx context.Context, st *stream) {
	if errors.Is(context.Cause(ctx), ErrShuttingDown) {
		st.fail(ErrShuttingDown)
	}
}

// Held resources.

// errReleased is the cause with which a release or resign call ends the
// holder's stream.
var errReleased = errors.New("httpapi: released through the API")

const (
	kindLock     = "lock"
	kindElection = "election candidacy"
)

// holding is a lock or a candidacy held by an open stream, under the lease
// of the stream's own session.
type holding struct {
	kind     string
	lease    coord.LeaseID
	release  func(context.Context) error         // Unlock or Resign
	proclaim func(context.Context, []byte) error // candidacies only
	end      context.CancelCauseFunc             // ends the holder's stream

	once sync.Once
	err  error
}

// releaseOnce releases the resource the first time it is called; later calls
// wait for the first and return its error. Both the release endpoints and
// the stream's own cleanup call it.
func (h *holding) releaseOnce(ctx context.Context) error {
	h.once.Do(func() { h.err = h.release(ctx) })
	return h.err
}

func (a *api) addHolding(h *holding) {
	a.mu.Lock()
	a.held[h.lease] = h
	a.mu.Unlock()
}

// findHolding returns what is held under lease if it is of kind; remove
// takes it out of the registry, so that of two concurrent release calls one
// finds nothing.
func (a *api) findHolding(lease coord.LeaseID, kind string, remove bool) (*holding, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.held[lease]
	if h == nil || h.kind != kind {
		return nil, fmt.Errorf("%w: no %s is held under lease %d through this member's API", errNotHeld, kind, lease)
	}
	if remove {
		delete(a.held, lease)
	}
	return h, nil
}

func (a *api) dropHolding(h *holding) {
	a.mu.Lock()
	if a.held[h.lease] == h {
		delete(a.held, h.lease)
	}
	a.mu.Unlock()
}

// releaseHeld is the release and resign endpoints: it releases what is held
// under lease and ends its holder's stream.
func (a *api) releaseHeld(ctx context.Context, lease int64, kind string) (any, error) {
	if err := checkLease(lease); err != nil {
		return nil, err
	}
	h, err := a.findHolding(coord.LeaseID(lease), kind, true)
	if err != nil {
		return nil, err
	}
	err = h.releaseOnce(ctx)
	// End the stream even if the release failed: its cleanup closes the
	// session, whose revoked lease frees the resource anyway.
	h.end(errReleased)
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// closeHeld releases what a stream held and closes its session, after the
// stream has ended.
func (a *api) closeHeld(h *holding, s *coord.Session) {
	a.dropHolding(h)
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	_ = h.releaseOnce(ctx) // fails when never acquired or already lost: nothing to release
	_ = s.Close(ctx)       // on failure the lease's TTL frees everything
}

// holdStream keeps a held resource for as long as its stream is open: it
// sends first, then heartbeats, until the client goes away (ctx ends with
// its own cause), the resource is released through the API (ctx ends with
// errReleased), or the resource ends (done closes; lost says why, nil when
// it was released through the API). The last two end with a "lost" line.
func holdStream(ctx context.Context, st *stream, first any, done <-chan struct{}, lost func() error, released string) {
	if st.send(first) != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errReleased) {
				st.fail(fmt.Errorf("%w: %s", errLost, released))
			}
			failIfShuttingDown(ctx, st)
			return
		case <-done:
			err := lost()
			if err == nil {
				err = fmt.Errorf("%w: %s", errLost, released)
			}
			st.fail(err)
			return
		case <-st.beat.C:
			if st.heartbeat() != nil {
				return
			}
		}
	}
}

// defaultHeldTTL is the session TTL of a held resource when ttl_ms is not
// given.
const defaultHeldTTL = 10 * time.Second

// millis converts a request's millisecond field, def when it is 0.
func millis(field string, ms int64, def time.Duration) (time.Duration, error) {
	const most = int64(1<<63-1) / int64(time.Millisecond)
	switch {
	case ms == 0:
		return def, nil
	case ms < 0 || ms > most:
		return 0, fmt.Errorf("%w: %s %d out of range", coord.ErrInvalidOption, field, ms)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func checkLease(id int64) error {
	if id <= 0 {
		return fmt.Errorf("%w: lease IDs are positive, got %d", coord.ErrInvalidOption, id)
	}
	return nil
}

func checkName(field, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s is empty", coord.ErrInvalidOption, field)
	}
	return nil
}
