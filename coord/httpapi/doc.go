// Package httpapi serves a coord.Node over HTTP with JSON bodies, for
// clients that are not written in Go or do not embed a member: shell scripts
// with curl, the coordctl command (examples/coordctl), health checks of a
// load balancer. It is the API v1 contract shared with those clients; it
// imports only coord and the standard library.
//
//	n, err := coord.Open(ctx, cfg)
//	...
//	srv := &http.Server{Addr: "127.0.0.1:2379", Handler: httpapi.New(n)}
//	go srv.ListenAndServe()
//
// # Endpoints
//
// Every POST body is one JSON object; a field the endpoint does not know is
// refused with 400, as are trailing data and an empty body.
//
//	POST /v1/kv/put          {"key","value","lease"?,"prev_kv"?}
//	                         -> {"header","prev_kv":KV|null}
//	POST /v1/kv/range        {"key","range_end"?,"prefix"?,"serializable"?,"limit"?,
//	                          "revision"?,"keys_only"?,"count_only"?}
//	                         -> {"header","kvs":[KV],"more","count"}
//	POST /v1/kv/deleterange  {"key","range_end"?,"prefix"?,"prev_kv"?}
//	                         -> {"header","deleted","prev_kvs":[KV]}
//	GET  /v1/members         -> {"members":[Member]}
//	POST /v1/members/add     {"name","address","observer"?,"force"?} -> {"member":Member}
//	POST /v1/members/remove  {"name","force"?} -> {}
//	POST /v1/members/promote {"name","force"?} -> {}
//	GET  /v1/status          -> {"member","replica_id","shards":[...]}
//	GET  /health             -> 200 {"health":true} or 503 {"health":false,"reason"}
//
// with
//
//	Header = {"shard","revision","raft_term","member"}
//	KV     = {"key","value","create_revision","mod_revision","version","lease"}
//	Member = {"name","id","address","voter","leads":[shard],"reachable"}
//
// The range fields map to coord's options: prefix to coord.WithPrefix,
// range_end to coord.WithRange (the two are exclusive), serializable to
// coord.WithSerializable, a non-zero limit to coord.WithLimit, a non-zero
// revision to coord.WithRev, keys_only and count_only to coord.WithKeysOnly
// and coord.WithCountOnly. Consistency is coord's: reads are linearizable
// unless serializable is set; a write is answered once applied on the member
// serving the request, so a read sent to the same server right after sees it.
//
// GET /health is healthy when every shard has a leader and a linearizable
// read of every shard on this member succeeds within 2 seconds.
//
// # Binary safety and numbers
//
// Keys and values are arbitrary bytes: in JSON they are base64 strings
// (standard alphabet, with padding), as in etcd's JSON gateway. A value
// missing from a put is the empty value. Revisions, lease IDs and counts
// are JSON numbers. Raft replica IDs ("id", "replica_id", "leader") are
// decimal strings, because they can exceed 2^53, the largest integer a
// JavaScript number holds exactly.
//
// # Errors
//
// An error is an HTTP status with the body
//
//	{"error":{"code":"not_found","message":"coord: member not found: \"x\""}}
//
// The code is one of invalid_argument (400: bad JSON or base64, unknown
// field, empty or oversized key or value, bad option or member address,
// future revision), not_found (404: unknown lease, member or path),
// method_not_allowed (405, with an Allow header), conflict (409: member
// exists), failed_precondition (412: the membership change would lose
// quorum; retry with "force" only to recover from members lost for good),
// compacted (410), payload_too_large (413: see MaxRequestBytes), no_quorum
// (503: no leader reachable), unavailable (503: the node is closed or the
// request was cancelled), timeout (504) and internal (500). A write that
// timed out after it was proposed may or may not have been applied: its
// message says "outcome unknown"; read the key before retrying.
//
// The handler passes each request's context to coord, so a client that
// disconnects cancels its call. Without a deadline on the request context
// (net/http sets none), coord's Config.RequestTimeout bounds the call.
//
// # Security
//
// The handler has no authentication, authorization or TLS of its own:
// anyone who can reach it can read and write every key and change the
// cluster's membership. Serve it on loopback, or mount it behind your own
// TLS and authentication middleware:
//
//	mux := http.NewServeMux()
//	mux.Handle("/", requireClientCert(httpapi.New(n)))
//	srv := &http.Server{Addr: ":2379", Handler: mux, TLSConfig: tlsCfg,
//		ReadHeaderTimeout: 10 * time.Second}
//	srv.ListenAndServeTLS("", "")
//
// Even on loopback, a web page open in a local browser can send it
// requests: wrap it in http.CrossOriginProtection (or an equivalent check of
// Origin) when a browser may run on the same host. Bodies are limited by
// MaxRequestBytes; set the http.Server's own timeouts (ReadHeaderTimeout,
// ReadTimeout) against slow clients.
package httpapi
