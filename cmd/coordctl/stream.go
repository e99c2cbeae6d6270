package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// streamSilence bounds the silence of an open stream: the server sends a
// line (a heartbeat if nothing else) at least every 10 s, so a longer
// silence means that the connection or the server is gone.
const streamSilence = 15 * time.Second

// errInterrupted is the cause of a context ended by SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted")

// errStreamEnded: the server closed a stream without the error line that
// the contract promises, as when the member process died.
var errStreamEnded = errors.New("the server closed the stream without saying why (the member may have stopped)")

// errClosedByUs is the cause with which close ends a stream.
var errClosedByUs = errors.New("stream closed")

// stream is an open streaming response: NDJSON lines, or the bytes of a
// snapshot. Reads from it are bounded by a silence timer (see arm). It is
// read by one goroutine at a time; close and arm may be called from any.
type stream struct {
	ep     string
	ctx    context.Context
	cancel context.CancelCauseFunc
	body   io.ReadCloser
	r      *bufio.Reader

	mu      sync.Mutex
	silence time.Duration // 0: no bound
	cause   error         // the error for a silence of that long
	timer   *time.Timer
}

// openStream sends a request for a stream (a GET when req is nil, else a
// POST of req as JSON) to the first endpoint of eps that answers, and
// returns the stream once its status is in: 200, else the error answered.
// A transport failure moves on to the next endpoint, whatever the stream:
// what a stream holds is released when its connection breaks, so nothing
// is left behind. The stream ends when ctx does or on close. openWithin,
// when not zero, bounds the wait for the response and then every silence
// of the stream until arm changes it.
func (c *cli) openStream(ctx context.Context, path string, req any, openWithin time.Duration) (*stream, error) {
	eps, body, err := c.prepare(req)
	if err != nil {
		return nil, err
	}
	s := &stream{}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	s.timer = time.AfterFunc(time.Hour, s.expire)
	s.timer.Stop()
	s.arm(openWithin, fmt.Errorf("no answer within %v (--timeout)", openWithin))
	var failures []error
	for _, ep := range eps {
		resp, err := c.request(s.ctx, ep, path, body)
		if err != nil {
			if s.ctx.Err() != nil {
				s.close()
				return nil, fmt.Errorf("%s: %w", ep, context.Cause(s.ctx))
			}
			failures = append(failures, fmt.Errorf("%s: %w", ep, unwrapURL(err)))
			continue
		}
		if resp.StatusCode != http.StatusOK {
			raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			s.close()
			return nil, decode(ep, resp.StatusCode, raw, nil)
		}
		s.ep, s.body = ep, resp.Body
		s.r = bufio.NewReader(readerFunc(s.read))
		return s, nil
	}
	s.close()
	return nil, fmt.Errorf("no endpoint answered: %w", joinErrors(failures))
}

// arm bounds every later silence of the stream to d (0: none), after which
// the stream ends with cause.
func (s *stream) arm(d time.Duration, cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silence, s.cause = d, cause
	s.timer.Stop()
	if d > 0 {
		s.timer.Reset(d)
	}
}

// armSilence bounds every later silence of an open stream to
// streamSilence: the server sends heartbeats.
func (s *stream) armSilence() {
	s.arm(streamSilence, fmt.Errorf("no line from %s for %v: the connection or the member is gone", s.ep, streamSilence))
}

func (s *stream) expire() {
	s.mu.Lock()
	cause := s.cause
	s.mu.Unlock()
	s.cancel(cause)
}

// read reads the body, restarting the silence timer on data.
func (s *stream) read(p []byte) (int, error) {
	n, err := s.body.Read(p)
	if n > 0 {
		s.mu.Lock()
		if s.silence > 0 {
			s.timer.Reset(s.silence)
		}
		s.mu.Unlock()
	}
	if err != nil && err != io.EOF && s.ctx.Err() != nil {
		// The transport's error for a cancelled request says less than
		// why it was cancelled.
		err = context.Cause(s.ctx)
	}
	return n, err
}

// next returns the next line of an NDJSON stream, skipping heartbeats. An
// error line is returned as an *apiError; a stream that ends without one as
// errStreamEnded.
func (s *stream) next() (json.RawMessage, error) {
	for {
		line, err := s.r.ReadBytes('\n')
		if err != nil {
			switch {
			case s.ctx.Err() != nil:
				return nil, context.Cause(s.ctx)
			case errors.Is(err, io.EOF):
				return nil, errStreamEnded
			default:
				return nil, err
			}
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var probe struct {
			Heartbeat bool `json:"heartbeat"`
			Error     *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line, &probe); err != nil {
			return nil, fmt.Errorf("%s: malformed stream line: %v", s.ep, err)
		}
		switch {
		case probe.Error != nil:
			return nil, &apiError{Code: probe.Error.Code, Message: probe.Error.Message}
		case probe.Heartbeat:
			continue
		}
		return line, nil
	}
}

// close ends the stream. It may be called more than once.
func (s *stream) close() {
	s.cancel(errClosedByUs)
	s.mu.Lock()
	s.timer.Stop()
	s.silence = 0
	s.mu.Unlock()
	if s.body != nil {
		s.body.Close()
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// untilSignal returns a context that ends with cause errInterrupted at the
// first signal on sigs. stop ends the watch of sigs and waits for it.
func untilSignal(parent context.Context, sigs <-chan os.Signal) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-sigs:
			cancel(errInterrupted)
		case <-quit:
		}
	}()
	return ctx, func() {
		close(quit)
		wg.Wait()
		cancel(nil)
	}
}

// interruptible is untilSignal on the process's SIGINT and SIGTERM.
func (c *cli) interruptible() (ctx context.Context, stop func()) {
	sigs, stopSignals := c.signals()
	ctx, stopWatch := untilSignal(context.Background(), sigs)
	return ctx, func() {
		stopWatch()
		stopSignals()
	}
}

// requestContext bounds one request of a command that runs until
// interrupted by --timeout; an interrupt cuts it short too.
func (c *cli) requestContext(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, c.timeout)
}

// interrupted reports whether err is, or ctx ended by, an interrupt.
func interrupted(ctx context.Context, err error) bool {
	return errors.Is(err, errInterrupted) || errors.Is(context.Cause(ctx), errInterrupted)
}

// follow runs a stream until interrupted (a POST of req to path): each
// line but heartbeats goes to each, which prints it, or fails for a
// malformed one. The stream's silence is bounded from its start, since the
// server sends heartbeats while its first line may be long in coming. An
// interrupt ends it with nil; the stream's failure reads "EP: what: ERR",
// and then "; " and resume(err) when that is not empty: where to resume.
func (c *cli) follow(path string, req any, what string, each func(ep string, raw json.RawMessage) error, resume func(error) string) error {
	ictx, stop := c.interruptible()
	defer stop()
	s, err := c.openStream(ictx, path, req, c.timeout)
	if err != nil {
		if interrupted(ictx, err) {
			return nil
		}
		return err
	}
	defer s.close()
	s.armSilence()
	for {
		raw, err := s.next()
		if err != nil {
			if interrupted(ictx, err) {
				return nil
			}
			if r := resume(err); r != "" {
				return fmt.Errorf("%s: %s: %w; %s", s.ep, what, err, r)
			}
			return fmt.Errorf("%s: %s: %w", s.ep, what, err)
		}
		if err := each(s.ep, raw); err != nil {
			return err
		}
	}
}
