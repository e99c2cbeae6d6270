package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// lineTimeout bounds the wait for one line of a stream.
const lineTimeout = 20 * time.Second

// ndjson is an open stream: a goroutine reads its lines.
type ndjson struct {
	t     *testing.T
	resp  *http.Response
	lines chan []byte // closed at the end of the body
	quit  chan struct{}
	done  chan struct{}
}

// post starts a POST of req as JSON, without failing a test (it may run on
// another goroutine). ctx ends the request.
func (c *client) post(ctx context.Context, path string, req any, hdr http.Header) (*http.Response, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.srv.URL+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		r.Header[k] = v
	}
	return c.srv.Client().Do(r)
}

// open POSTs req and expects a stream.
func (c *client) open(path string, req any) *ndjson {
	c.t.Helper()
	resp, err := c.post(coordtestContext(c.t), path, req, nil)
	if err != nil {
		c.t.Fatalf("POST %s: %v", path, err)
	}
	return c.stream(path, resp)
}

// stream checks that resp is a stream and starts reading it.
func (c *client) stream(path string, resp *http.Response) *ndjson {
	c.t.Helper()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.t.Fatalf("POST %s: %s %q: %s", path, resp.Status, resp.Header.Get("Content-Type"), b)
	}
	s := &ndjson{t: c.t, resp: resp, lines: make(chan []byte, 64), quit: make(chan struct{}), done: make(chan struct{})}
	go s.read()
	c.t.Cleanup(s.close)
	return s
}

// openAsync starts a stream request whose answer may be long in coming
// (a lock wait, a campaign) and delivers the response.
func (c *client) openAsync(path string, req any) <-chan *http.Response {
	ctx := coordtestContext(c.t)
	ch := make(chan *http.Response, 1)
	go func() {
		resp, err := c.post(ctx, path, req, nil)
		if err != nil {
			close(ch)
			return
		}
		ch <- resp
	}()
	return ch
}

func (s *ndjson) read() {
	defer close(s.done)
	defer close(s.lines)
	r := bufio.NewReader(s.resp.Body)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			select {
			case s.lines <- line:
			case <-s.quit:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// close disconnects, as a client that goes away.
func (s *ndjson) close() {
	select {
	case <-s.quit:
		return
	default:
	}
	close(s.quit)
	s.resp.Body.Close()
	<-s.done
}

// raw returns the next line, heartbeats included; nil at the end of the
// stream.
func (s *ndjson) raw() []byte {
	s.t.Helper()
	select {
	case line, ok := <-s.lines:
		if !ok {
			return nil
		}
		return line
	case <-time.After(lineTimeout):
		s.t.Fatalf("no line within %v", lineTimeout)
		return nil
	}
}

// line returns the next line that is not a heartbeat.
func (s *ndjson) line() []byte {
	s.t.Helper()
	for {
		line := s.raw()
		if line == nil {
			s.t.Fatalf("stream ended")
		}
		if !isHeartbeat(line) {
			return line
		}
	}
}

// decode decodes the next line into v, which must describe every field the
// line has.
func (s *ndjson) decode(v any) []byte {
	s.t.Helper()
	line := s.line()
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.t.Fatalf("decoding %s: %v", line, err)
	}
	return line
}

// end expects an error line with code, then the end of the stream.
func (s *ndjson) end(code string) errLine {
	s.t.Helper()
	var e errLine
	line := s.decode(&e)
	if e.Error.Code != code || e.Error.Message == "" {
		s.t.Fatalf("want an error line with code %s, got %s", code, line)
	}
	if line := s.raw(); line != nil {
		s.t.Fatalf("line after the error line: %s", line)
	}
	return e
}

// errLine is the last line of a stream that failed.
type errLine struct {
	Error struct {
		Code     string `json:"code"`
		Message  string `json:"message"`
		Earliest *int64 `json:"earliest"`
	} `json:"error"`
}

func coordtestContext(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

func isHeartbeat(line []byte) bool {
	return strings.TrimSpace(string(line)) == `{"heartbeat":true}`
}
