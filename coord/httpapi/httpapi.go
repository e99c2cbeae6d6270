package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// DefaultMaxRequestBytes is the request body limit when MaxRequestBytes is not
// given. It leaves room for a value of coord's default MaxValueBytes (1 MiB)
// after base64 encoding (4/3 larger) and JSON framing.
const DefaultMaxRequestBytes = 4 << 20

// healthTimeout bounds the linearizable read of GET /health, so that a load
// balancer's probe gets an answer even when the cluster has lost quorum.
const healthTimeout = 2 * time.Second

// Option configures New. Options apply in order; a nil Option is ignored.
type Option func(*config)

type config struct {
	maxRequestBytes int64
}

// MaxRequestBytes limits the size of a request body to n bytes; a larger body
// is refused with 413 payload_too_large before it is decoded. n <= 0 keeps
// DefaultMaxRequestBytes. The limit is on the JSON text: base64 makes keys and
// values a third larger. coord applies its own limits (Config.MaxValueBytes,
// Config.MaxRequestBytes) after decoding, answered with 400.
func MaxRequestBytes(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.maxRequestBytes = n
		}
	}
}

// New returns an http.Handler serving coordkit's HTTP API v1 (see the package
// documentation) on behalf of n. Mount it at the root of a server or under a
// prefix with http.StripPrefix.
//
// n must not be nil. New itself never fails or blocks; errors are answered
// per request as the package documentation lists.
//
// The handler is safe for concurrent use. Each request blocks until n answers
// or the request's context ends (the client disconnects or the server's
// timeouts fire); a request whose context has no deadline gets n's
// Config.RequestTimeout. The handler neither starts goroutines nor holds
// state between requests, and it does not close n: once n is closed, every
// endpoint answers 503 (unavailable, or an unhealthy /health).
func New(n *coord.Node, opts ...Option) http.Handler {
	cfg := config{maxRequestBytes: DefaultMaxRequestBytes}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	a := &api{n: n, maxBytes: cfg.maxRequestBytes}
	a.routes = map[string]route{
		"/v1/kv/put":          {http.MethodPost, post(a, a.put)},
		"/v1/kv/range":        {http.MethodPost, post(a, a.rangeKeys)},
		"/v1/kv/deleterange":  {http.MethodPost, post(a, a.deleteRange)},
		"/v1/members":         {http.MethodGet, get(a.members)},
		"/v1/members/add":     {http.MethodPost, post(a, a.addMember)},
		"/v1/members/remove":  {http.MethodPost, post(a, a.removeMember)},
		"/v1/members/promote": {http.MethodPost, post(a, a.promoteMember)},
		"/v1/status":          {http.MethodGet, get(a.status)},
		"/health":             {http.MethodGet, a.health},
	}
	return a
}

type api struct {
	n        *coord.Node
	maxBytes int64
	routes   map[string]route
}

type route struct {
	method string
	serve  http.HandlerFunc
}

// ServeHTTP routes by exact path, so that an unknown path or a wrong method
// gets the JSON error body of the contract rather than net/http's plain text.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := a.routes[r.URL.Path]
	if !ok {
		writeError(w, http.StatusNotFound, codeNotFound, fmt.Sprintf("no endpoint %s", r.URL.Path))
		return
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, fmt.Sprintf("%s takes %s, not %s", r.URL.Path, rt.method, r.Method))
		return
	}
	rt.serve(w, r)
}

// post adapts a call taking a decoded request body of type Req.
func post[Req any](a *api, call func(context.Context, *Req) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := new(Req)
		if status, code, msg := a.decode(w, r, req); status != 0 {
			writeError(w, status, code, msg)
			return
		}
		resp, err := call(r.Context(), req)
		respond(w, resp, err)
	}
}

// get adapts a call without a request body.
func get(call func(context.Context) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		resp, err := call(r.Context())
		respond(w, resp, err)
	}
}

func respond(w http.ResponseWriter, resp any, err error) {
	if err != nil {
		writeCoordError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// decode reads one JSON object from the body into v, refusing unknown
// fields, trailing data and bodies over the limit. It returns status 0 on
// success, otherwise the error to answer with.
func (a *api) decode(w http.ResponseWriter, r *http.Request, v any) (status int, code, msg string) {
	if r.ContentLength > a.maxBytes {
		return http.StatusRequestEntityTooLarge, codePayloadTooLarge, a.tooLarge()
	}
	body := http.MaxBytesReader(w, r.Body, a.maxBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Exactly one value: "{...}{...}" or "{...} x" is a malformed request.
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON object")
			if terr != nil {
				err = terr
			}
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return 0, "", ""
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, codePayloadTooLarge, a.tooLarge()
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, codeInvalidArgument, "empty request body: want a JSON object"
	default:
		return http.StatusBadRequest, codeInvalidArgument, "bad request body: " + err.Error()
	}
}

func (a *api) tooLarge() string {
	return fmt.Sprintf("request body larger than %d bytes", a.maxBytes)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// An encoding error here means the client went away: nothing to tell it.
	_ = json.NewEncoder(w).Encode(v)
}
