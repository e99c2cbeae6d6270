package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/pubsub"
)

// DefaultMaxRequestBytes is the request body limit when MaxRequestBytes is not
// given. It leaves room for a value of coord's default MaxValueBytes (1 MiB)
// after base64 encoding (4/3 larger) and JSON framing.
const DefaultMaxRequestBytes = 4 << 20

// DefaultMaxRestoreBytes bounds the backup POST /v1/snapshot/restore takes
// when neither MaxRestoreBytes nor the Node's quota (coord.Config.MaxStoreBytes)
// gives a bound.
const DefaultMaxRestoreBytes = 2 << 30

// Stream defaults (see the package documentation on streams).
const (
	// DefaultMaxStreams is the limit on concurrent streams when MaxStreams is
	// not given.
	DefaultMaxStreams = 1000
	// DefaultStreamWriteTimeout bounds one write of a stream when
	// StreamWriteTimeout is not given.
	DefaultStreamWriteTimeout = 10 * time.Second
	// MaxHeartbeatInterval is the longest a stream stays silent: the contract
	// promises a line at least this often. It is also the default interval.
	MaxHeartbeatInterval = 10 * time.Second
)

// healthTimeout bounds the linearizable read of GET /health, so that a load
// balancer's probe gets an answer even when the cluster has lost quorum.
const healthTimeout = 2 * time.Second

// Option configures New. Options apply in order; a nil Option is ignored.
type Option func(*config)

type config struct {
	maxRequestBytes int64
	maxStreams      int64
	writeTimeout    time.Duration
	heartbeat       time.Duration
	token           *string
	maxRestoreBytes int64
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

// MaxStreams limits the streams (watches, subscriptions, held locks,
// candidacies and registrations, lock waits, snapshots) open at once on the
// handler to n; one more is refused with 503 too_many_streams. Each open
// stream holds a goroutine, a connection and, for held resources, a lease
// kept alive through Raft. n <= 0 keeps DefaultMaxStreams.
func MaxStreams(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxStreams = int64(n)
		}
	}
}

// MaxRestoreBytes limits the backup POST /v1/snapshot/restore takes to n
// bytes; a larger one is refused with 413 payload_too_large, before it is
// read when its Content-Length says so. coord.Node.Restore holds the whole
// backup in memory while it verifies and writes it. Whatever n, a backup
// larger than the Node's quota could hold (4/3 of Config.MaxStoreBytes per
// shard, since it carries keys and values in base64) is refused. n <= 0
// keeps that bound alone, or DefaultMaxRestoreBytes for a Node without a
// quota.
func MaxRestoreBytes(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.maxRestoreBytes = n
		}
	}
}

// StreamWriteTimeout bounds every write of a stream: a client that does not
// take a line (or a heartbeat) within d is disconnected, and what its stream
// held is released. It replaces the http.Server's WriteTimeout for streams,
// which would otherwise end every stream after that long. d <= 0 keeps
// DefaultStreamWriteTimeout.
func StreamWriteTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.writeTimeout = d
		}
	}
}

// HeartbeatInterval makes an idle stream send {"heartbeat":true} every d,
// for example to stay under the idle timeout of a proxy in front of the
// handler. d <= 0 or above MaxHeartbeatInterval keeps MaxHeartbeatInterval,
// the most the contract allows.
func HeartbeatInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 && d <= MaxHeartbeatInterval {
			c.heartbeat = d
		}
	}
}

// BearerToken requires every request but GET /health to carry the header
// "Authorization: Bearer tok"; others are refused with 401 unauthenticated
// and "WWW-Authenticate: Bearer". The comparison takes the same time
// whatever the token sent. An empty tok refuses every request but GET
// /health, since an empty secret is a configuration mistake (an unset
// environment variable, say) that must not open the API. A token only
// authenticates over a channel that hides it: serve the handler over TLS
// unless it listens on loopback.
func BearerToken(tok string) Option {
	return func(c *config) { c.token = &tok }
}

// New returns an http.Handler serving coordkit's HTTP API v1 (see the package
// documentation) on behalf of n. Mount it at the root of a server or under a
// prefix with http.StripPrefix.
//
// n must not be nil. New itself never fails or blocks; errors are answered
// per request as the package documentation lists.
//
// The handler is safe for concurrent use. A request blocks until n answers
// or the request's context ends (the client disconnects or the server's
// timeouts fire); a request whose context has no deadline gets n's
// Config.RequestTimeout. A stream lasts until the client closes it, a write
// to it times out (StreamWriteTimeout) or what it follows ends; its
// goroutines end with it, and what it held is released. The handler does
// not close n: once n is closed, every endpoint answers 503 (unavailable, or
// an unhealthy /health) and open streams end with an error line.
func New(n *coord.Node, opts ...Option) http.Handler {
	cfg := config{
		maxRequestBytes: DefaultMaxRequestBytes, maxStreams: DefaultMaxStreams,
		writeTimeout: DefaultStreamWriteTimeout, heartbeat: MaxHeartbeatInterval,
	}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	a := &api{
		n: n, maxBytes: cfg.maxRequestBytes, maxStreams: cfg.maxStreams,
		writeTimeout: cfg.writeTimeout, heartbeat: cfg.heartbeat, maxRestore: cfg.maxRestoreBytes,
		held: map[coord.LeaseID]*holding{}, pubsubs: map[string]*pubsub.PubSub{},
	}
	if cfg.token != nil {
		a.auth = true
		a.tokenSum = sha256.Sum256([]byte(*cfg.token))
		a.denyAll = *cfg.token == ""
	}
	a.routes = map[string]route{
		"/v1/kv/put":              {method: http.MethodPost, serve: post(a, a.put)},
		"/v1/kv/range":            {method: http.MethodPost, serve: post(a, a.rangeKeys)},
		"/v1/kv/deleterange":      {method: http.MethodPost, serve: post(a, a.deleteRange)},
		"/v1/kv/txn":              {method: http.MethodPost, serve: post(a, a.txn)},
		"/v1/kv/compact":          {method: http.MethodPost, serve: post(a, a.compact)},
		"/v1/kv/list":             {method: http.MethodPost, serve: post(a, a.list)},
		"/v1/watch":               {method: http.MethodPost, serve: postStream(a, a.watch), stream: true},
		"/v1/lease/grant":         {method: http.MethodPost, serve: post(a, a.leaseGrant)},
		"/v1/lease/keepalive":     {method: http.MethodPost, serve: post(a, a.leaseKeepAlive)},
		"/v1/lease/revoke":        {method: http.MethodPost, serve: post(a, a.leaseRevoke)},
		"/v1/lease/timetolive":    {method: http.MethodPost, serve: post(a, a.leaseTimeToLive)},
		"/v1/lease/leases":        {method: http.MethodGet, serve: get(a.leases)},
		"/v1/lock/acquire":        {method: http.MethodPost, serve: postStream(a, a.lockAcquire), stream: true},
		"/v1/lock/release":        {method: http.MethodPost, serve: post(a, a.lockRelease)},
		"/v1/election/campaign":   {method: http.MethodPost, serve: postStream(a, a.campaign), stream: true},
		"/v1/election/proclaim":   {method: http.MethodPost, serve: post(a, a.proclaim)},
		"/v1/election/resign":     {method: http.MethodPost, serve: post(a, a.resign)},
		"/v1/election/leader":     {method: http.MethodPost, serve: post(a, a.leader)},
		"/v1/election/observe":    {method: http.MethodPost, serve: postStream(a, a.observe), stream: true},
		"/v1/registry/register":   {method: http.MethodPost, serve: postStream(a, a.register), stream: true},
		"/v1/registry/lookup":     {method: http.MethodPost, serve: post(a, a.lookup)},
		"/v1/registry/services":   {method: http.MethodPost, serve: post(a, a.services)},
		"/v1/registry/watch":      {method: http.MethodPost, serve: postStream(a, a.registryWatch), stream: true},
		"/v1/pubsub/publish":      {method: http.MethodPost, serve: post(a, a.publish)},
		"/v1/pubsub/subscribe":    {method: http.MethodPost, serve: postStream(a, a.subscribe), stream: true},
		"/v1/pubsub/stats":        {method: http.MethodPost, serve: post(a, a.stats)},
		"/v1/pubsub/retention":    {method: http.MethodPost, serve: post(a, a.setRetention)},
		"/v1/snapshot":            {method: http.MethodGet, serve: a.snapshot, stream: true},
		"/v1/snapshot/restore":    {method: http.MethodPost, serve: a.restore, stream: true},
		"/v1/members":             {method: http.MethodGet, serve: get(a.members)},
		"/v1/members/add":         {method: http.MethodPost, serve: post(a, a.addMember)},
		"/v1/members/remove":      {method: http.MethodPost, serve: post(a, a.removeMember)},
		"/v1/members/promote":     {method: http.MethodPost, serve: post(a, a.promoteMember)},
		"/v1/members/move-leader": {method: http.MethodPost, serve: post(a, a.moveLeader)},
		"/v1/status":              {method: http.MethodGet, serve: get(a.status)},
		"/v1/alarms":              {method: http.MethodGet, serve: get(a.alarms)},
		"/v1/alarms/disarm":       {method: http.MethodPost, serve: post(a, a.disarmAlarms)},
		"/v1/hash/check":          {method: http.MethodPost, serve: post(a, a.checkHash)},
		"/health":                 {method: http.MethodGet, serve: a.health},
	}
	return a
}

type api struct {
	n            *coord.Node
	maxBytes     int64
	maxStreams   int64
	writeTimeout time.Duration
	heartbeat    time.Duration
	maxRestore   int64 // MaxRestoreBytes; 0 when not given
	routes       map[string]route

	auth     bool
	denyAll  bool     // BearerToken("")
	tokenSum [32]byte // SHA-256 of the token: equal lengths for the constant-time compare

	streams   atomic.Int64 // open streams
	restoring atomic.Bool  // a restore runs (one at a time)

	mu      sync.Mutex                 // guards held and pubsubs
	held    map[coord.LeaseID]*holding // held locks and candidacies, by session lease
	pubsubs map[string]*pubsub.PubSub  // by prefix, bounded by maxPubSubs

}

type route struct {
	method string
	serve  http.HandlerFunc
	stream bool // counts toward MaxStreams
}

// ServeHTTP checks the bearer token, then routes by exact path, so that an
// unknown path or a wrong method gets the JSON error body of the contract
// rather than net/http's plain text; a stream takes one of MaxStreams slots
// until it ends.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.auth && !(r.URL.Path == "/health" && r.Method == http.MethodGet) && !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeCoordError(w, errUnauthenticated)
		return
	}
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
	if rt.stream {
		if a.streams.Add(1) > a.maxStreams {
			a.streams.Add(-1)
			writeCoordError(w, fmt.Errorf("%w: %d streams open, the limit", errTooManyStreams, a.maxStreams))
			return
		}
		defer a.streams.Add(-1)
	}
	rt.serve(w, r)
}

// authorized compares the request's bearer token with the configured one.
// Both are hashed first so that the constant-time compare also hides the
// token's length.
func (a *api) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || a.denyAll {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1
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

// postStream adapts a stream endpoint taking a decoded request body.
func postStream[Req any](a *api, serve func(http.ResponseWriter, *http.Request, *Req)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := new(Req)
		if status, code, msg := a.decode(w, r, req); status != 0 {
			writeError(w, status, code, msg)
			return
		}
		// The body is read: from here on the client only reads, for as long
		// as the stream lasts. A server ReadTimeout would otherwise cancel
		// the request once it passed (net/http's background read of the
		// connection fails), ending every stream after that long.
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		serve(w, r, req)
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
