package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Wire types of the HTTP API v1 (see coord/httpapi). []byte fields carry
// base64 keys and values; replica IDs are decimal strings.
type (
	kv struct {
		Key            []byte `json:"key"`
		Value          []byte `json:"value"`
		CreateRevision int64  `json:"create_revision"`
		ModRevision    int64  `json:"mod_revision"`
		Version        int64  `json:"version"`
		Lease          int64  `json:"lease"`
	}
	rangeResponse struct {
		KVs   []kv  `json:"kvs"`
		More  bool  `json:"more"`
		Count int64 `json:"count"`
	}
	deleteResponse struct {
		Deleted int64 `json:"deleted"`
	}
	member struct {
		Name      string `json:"name"`
		ID        string `json:"id"`
		Address   string `json:"address"`
		Voter     bool   `json:"voter"`
		Leads     []int  `json:"leads"`
		Reachable bool   `json:"reachable"`
	}
	statusResponse struct {
		Member    string `json:"member"`
		ReplicaID string `json:"replica_id"`
		Shards    []struct {
			Shard           int    `json:"shard"`
			Leader          string `json:"leader"`
			Term            uint64 `json:"term"`
			Revision        int64  `json:"revision"`
			CompactRevision int64  `json:"compact_revision"`
			AppliedIndex    uint64 `json:"applied_index"`
			Leases          int    `json:"leases"`
		} `json:"shards"`
	}
	healthResponse struct {
		Health bool   `json:"health"`
		Reason string `json:"reason"`
	}
)

// apiError is an error answered by the server.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

// httpClient returns the client of this run; run closes its idle
// connections when the command ends.
func (c *cli) httpClient() *http.Client {
	if c.transport == nil {
		c.transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &http.Client{Transport: c.transport}
}

// credentials loads --cacert, --cert, --key and the bearer token into the
// client, once the flags are parsed.
func (c *cli) credentials() error {
	if (c.cert == "") != (c.key == "") {
		return errors.New("--cert and --key go together")
	}
	if c.cacert != "" || c.cert != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.cacert != "" {
			pem, err := os.ReadFile(c.cacert)
			if err != nil {
				return fmt.Errorf("--cacert: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--cacert: %s holds no PEM certificate", c.cacert)
			}
		}
		if c.cert != "" {
			cert, err := tls.LoadX509KeyPair(c.cert, c.key)
			if err != nil {
				return fmt.Errorf("--cert: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		c.transport = http.DefaultTransport.(*http.Transport).Clone()
		c.transport.TLSClientConfig = cfg
	}
	c.token = os.Getenv("COORDCTL_BEARER_TOKEN")
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return fmt.Errorf("--bearer-token-file: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
	}
	return nil
}

// context bounds the whole command by --timeout.
func (c *cli) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.timeout)
}

// call sends one request (a GET when req is nil, else a POST of req as
// JSON) to the first endpoint that answers and returns the response body,
// also decoded into resp when not nil. read says that the request changes
// nothing, so that it may go to the next endpoint after any transport
// failure; a write does only when it could not connect.
func (c *cli) call(ctx context.Context, path string, req, resp any, read bool) ([]byte, error) {
	eps, body, err := c.prepare(req)
	if err != nil {
		return nil, err
	}
	var failures []error
	for _, ep := range eps {
		raw, status, err := c.send(ctx, ep, path, body)
		if err != nil {
			err = unwrapURL(err)
			if ctx.Err() != nil {
				return nil, c.timedOut(ep, read)
			}
			failures = append(failures, fmt.Errorf("%s: %w", ep, err))
			if read || isDialError(err) {
				continue
			}
			return nil, fmt.Errorf("%w (the write may or may not have been applied)", failures[len(failures)-1])
		}
		return raw, decode(ep, status, raw, resp)
	}
	return nil, fmt.Errorf("no endpoint answered: %w", joinErrors(failures))
}

// prepare returns the endpoints to try and the body of a request: req as
// JSON, nil (for a GET) when req is nil.
func (c *cli) prepare(req any) (eps []string, body []byte, err error) {
	if eps, err = c.endpointList(); err != nil {
		return nil, nil, err
	}
	if req != nil {
		if body, err = json.Marshal(req); err != nil {
			return nil, nil, err
		}
	}
	return eps, body, nil
}

// unwrapURL drops the *url.Error layer, which repeats the method and URL.
func unwrapURL(err error) error {
	var u *url.Error
	if errors.As(err, &u) {
		return u.Err
	}
	return err
}

// joinErrors is errors.Join printed on one line.
func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return multiError(errs)
}

type multiError []error

func (m multiError) Error() string {
	msgs := make([]string, len(m))
	for i, e := range m {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

func (m multiError) Unwrap() []error { return m }

func (c *cli) timedOut(ep string, read bool) error {
	if read {
		return fmt.Errorf("%s: no answer within %v (--timeout)", ep, c.timeout)
	}
	return fmt.Errorf("%s: no answer within %v (--timeout); the write may or may not have been applied", ep, c.timeout)
}

// send does one HTTP exchange with ep, returning the status and body of
// any answer.
func (c *cli) send(ctx context.Context, ep, path string, body []byte) ([]byte, int, error) {
	resp, err := c.request(ctx, ep, path, body)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, 0, err
	}
	return raw, resp.StatusCode, nil
}

// request sends a GET when body is nil, else a POST of body as JSON, and
// returns the response with its body still to read.
func (c *cli) request(ctx context.Context, ep, path string, body []byte) (*http.Response, error) {
	method, rd, ctype := http.MethodGet, io.Reader(nil), ""
	if body != nil {
		method, rd, ctype = http.MethodPost, bytes.NewReader(body), "application/json"
	}
	req, err := c.newRequest(ctx, method, ep+path, rd, ctype)
	if err != nil {
		return nil, err
	}
	return c.httpClient().Do(req)
}

// newRequest prepares a request with the bearer token, if any; a body is
// sent with contentType.
func (c *cli) newRequest(ctx context.Context, method, url string, body io.Reader, contentType string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// callAt is call for one endpoint: the release of a lock or a leadership
// must reach the member whose stream holds it.
func (c *cli) callAt(ctx context.Context, ep, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	raw, status, err := c.send(ctx, ep, path, body)
	if err != nil {
		if ctx.Err() != nil {
			return c.timedOut(ep, false)
		}
		return fmt.Errorf("%s: %w", ep, unwrapURL(err))
	}
	return decode(ep, status, raw, resp)
}

// decode turns a non-200 answer into an *apiError and decodes a 200 one
// into resp.
func decode(ep string, status int, raw []byte, resp any) error {
	if status != http.StatusOK {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error.Message == "" {
			return &apiError{Status: status, Message: fmt.Sprintf("%s answered HTTP %d %s", ep, status, http.StatusText(status))}
		}
		return &apiError{Status: status, Code: e.Error.Code, Message: e.Error.Message}
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(raw, resp); err != nil {
		return fmt.Errorf("%s: malformed response: %v", ep, err)
	}
	return nil
}

// isDialError reports whether err happened before a connection was made,
// so that the request certainly never reached a server.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// probe asks one endpoint for path (a GET), for the endpoint commands
// that ask every endpoint. It returns how long the exchange took.
func (c *cli) probe(ctx context.Context, ep, path string) (raw []byte, status int, took time.Duration, err error) {
	start := time.Now()
	raw, status, err = c.send(ctx, ep, path, nil)
	if err != nil {
		err = unwrapURL(err)
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer within %v (--timeout)", c.timeout)
		}
	}
	return raw, status, time.Since(start), err
}
