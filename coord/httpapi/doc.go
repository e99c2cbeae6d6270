// Package httpapi serves a coord.Node over HTTP with JSON bodies, for
// clients that are not written in Go or do not embed a member: shell scripts
// with curl, the coordctl command (cmd/coordctl), health checks of a
// load balancer. It is the API v1 contract shared with those clients. It
// imports coord, the primitives built on it (coord/lock, coord/election,
// coord/registry, coord/pubsub) and the standard library only.
//
//	n, err := coord.Open(ctx, cfg)
//	...
//	srv := &http.Server{Addr: "127.0.0.1:2379", Handler: httpapi.New(n),
//		ReadHeaderTimeout: 10 * time.Second}
//	go srv.ListenAndServe()
//
// # Endpoints
//
// Every POST body but a restore's is one JSON object; a field the endpoint does not know is
// refused with 400, as are trailing data and an empty body. Endpoints marked
// "~" answer with a stream (see Streams); lock/acquire, election/campaign and
// registry/register hold a resource for as long as their stream is open (see
// Held resources).
//
//	Keys
//	POST /v1/kv/put              {"key","value","lease"?,"prev_kv"?,"if_mod_revision"?}
//	                             -> {"header","prev_kv":KV|null}
//	POST /v1/kv/range            {"key","range_end"?,"prefix"?,"serializable"?,"limit"?,
//	                              "revision"?,"keys_only"?,"count_only"?}
//	                             -> {"header","kvs":[KV],"more","count"}
//	POST /v1/kv/deleterange      {"key","range_end"?,"prefix"?,"prev_kv"?,"if_mod_revision"?}
//	                             -> {"header","deleted","prev_kvs":[KV]}
//	POST /v1/kv/txn              {"compare":[Cmp],"success":[ReqOp],"failure":[ReqOp]}
//	                             -> {"header","succeeded","responses":[RespOp]}
//	POST /v1/kv/compact          {"shard","revision"} -> {"header"}
//	POST /v1/kv/list             {"dir"?,"serializable"?} -> {"header","entries":[Entry]}
//	POST /v1/watch             ~ {"key","range_end"?,"prefix"?,"start_revision"?,"prev_kv"?,
//	                              "filters"?:["noput","nodelete"],"progress_notify"?}
//	                             -> {"header","created":true}, then {"header","events":[Event]} ...
//	Leases
//	POST /v1/lease/grant         {"ttl_ms"} -> {"id","ttl_ms"}
//	POST /v1/lease/keepalive     {"id"} -> {"id","ttl_ms"}  (one renewal)
//	POST /v1/lease/revoke        {"id"} -> {}
//	POST /v1/lease/timetolive    {"id","keys"?} -> {"id","ttl_ms","granted_ttl_ms","keys":[b64]}
//	GET  /v1/lease/leases        -> {"leases":[{"id","ttl_ms"}]}
//	Locks
//	POST /v1/lock/acquire      ~ {"name","ttl_ms"?,"wait_ms"?,"try"?}
//	                             -> {"lock":{"name","key","fence","lease"}}, then heartbeats
//	POST /v1/lock/release        {"lease"} -> {}
//	Elections
//	POST /v1/election/campaign ~ {"name","value","ttl_ms"?}
//	                             -> {"leader":Leader} once elected, then heartbeats
//	POST /v1/election/proclaim   {"lease","value"} -> {}
//	POST /v1/election/resign     {"lease"} -> {}
//	POST /v1/election/leader     {"name"} -> {"leader":Leader}
//	POST /v1/election/observe  ~ {"name"} -> {"leader":Leader|null} ...
//	Service registry
//	POST /v1/registry/register ~ {"prefix"?,"service","id","addr","metadata"?,"weight"?,
//	                              "status"?,"ttl_ms"?,"check"?:Check}
//	                             -> {"registered":Instance}, then heartbeats
//	POST /v1/registry/lookup     {"prefix"?,"service","passing_only"?,"local"?} -> {"instances":[Instance]}
//	POST /v1/registry/services   {"prefix"?} -> {"services":[string]}
//	POST /v1/registry/watch    ~ {"prefix"?,"service","from_revision"?}
//	                             -> {"type","instance":Instance|null,"revision"} ...
//	Pub/sub
//	POST /v1/pubsub/publish      {"prefix"?,"topic","payload","msg_id"?} -> {"offset"}
//	                                ("msg_id": stored once within the topic's duplicate window)
//	POST /v1/pubsub/subscribe  ~ {"prefix"?,"topic","from"?:"now"|"earliest","offset"?,"time"?}
//	                             -> {"message":{"topic","offset","time","payload"}} ...
//	POST /v1/pubsub/stats        {"prefix"?,"topic"} -> {"messages","bytes","first","last","removed"}
//	POST /v1/pubsub/retention    {"prefix"?,"topic","max_messages"?,"max_bytes"?,"max_age_ms"?,
//	                              "duplicate_window_ms"?} -> {} (replaces the topic's retention; see
//	                              Retention)
//	Cluster
//	GET  /v1/members             -> {"members":[Member]}
//	POST /v1/members/add         {"name","address","observer"?,"force"?} -> {"member":Member}
//	POST /v1/members/remove      {"name","force"?} -> {}
//	POST /v1/members/promote     {"name","force"?} -> {}
//	POST /v1/members/move-leader {"name","shard"?} -> {} once "name" leads the shard
//	GET  /v1/status              -> {"member","replica_id","shards":[...],"disk_low"}
//	                                (each shard with its "store_bytes", and its "nospace" and
//	                                "corrupt" alarms)
//	GET  /v1/alarms              -> {"alarms":[{"shard","alarm":"NOSPACE"|"CORRUPT","members"?}]}
//	                                ("members": for CORRUPT, the members whose copy diverged)
//	POST /v1/alarms/disarm       {"alarm"?:"NOSPACE"|"CORRUPT"} -> {} (coord.Node.DisarmAlarms;
//	                                every alarm without "alarm")
//	POST /v1/hash/check          {} -> {"checks":[HashCheck]} (coord.Node.CheckHash; see Integrity)
//	GET  /v1/snapshot          ~ -> a backup (application/octet-stream), see Snapshots
//	POST /v1/snapshot/restore    a backup as the body -> {"keys","skipped_lease"}, see Snapshots
//	GET  /health                 -> 200 {"health":true} or 503 {"health":false,"reason"}
//
// with
//
//	Header   = {"shard","revision","raft_term","member"}
//	KV       = {"key","value","create_revision","mod_revision","version","lease"}
//	Cmp      = {"key","target":"value"|"version"|"create"|"mod"|"lease",
//	            "result":"="|"!="|"<"|">","value" (target value) | "number" (the others)}
//	ReqOp    = {"put":{put body}} | {"range":{range body}} | {"delete_range":{deleterange body}}
//	RespOp   = {"put":{...}} | {"range":{...}} | {"delete_range":{...}}, the endpoints' answers
//	Event    = {"type":"PUT"|"DELETE","kv":KV,"prev_kv":KV|null}
//	Entry    = {"name","dir","kv":KV|null}: a key ("kv" set) or a directory ("dir" true,
//	           "name" ending in "/"), "name" the whole key
//	Leader   = {"name","key","value","rev","lease"}
//	Instance = {"service","id","addr","metadata":{},"weight","status","revision"}
//	Check    = {"http":URL | "tcp":"host:port","interval_ms"?,"timeout_ms"?,"deregister_after_ms"?}
//	           run by the serving member, as registry.Check: it reaches whatever
//	           address the client names, so give the API only to trusted clients
//	Member   = {"name","id","address","voter","leads":[shard],"reachable"}
//
// # Keys
//
// The range fields map to coord's options: prefix to coord.WithPrefix,
// range_end to coord.WithRange (the two are exclusive), serializable to
// coord.WithSerializable, a non-zero limit to coord.WithLimit, a non-zero
// revision to coord.WithRev, keys_only and count_only to coord.WithKeysOnly
// and coord.WithCountOnly. Consistency is coord's: reads are linearizable
// unless serializable is set; a write is answered once applied on the member
// serving the request, so a read sent to the same server right after sees it.
//
// "if_mod_revision" makes a put, or the delete of a single key, a
// compare-and-swap: it happens only if the key's mod_revision equals it (0:
// the key must not exist), otherwise 409 compare_failed, whose message names
// the key and its current mod_revision. A txn is coord.Txn: atomic within
// one shard, and, as in etcd, a compare that fails is not an error but
// succeeded=false with the failure branch run. A range inside a txn takes
// neither serializable nor revision.
//
// list is coord.Node.List, the directory's immediate children as ls shows
// them: the keys directly under "dir" (a "/" is appended if it does not end
// in one) and each subdirectory once, in name order; an empty dir lists the
// top level. Its header is that of dir's shard; the top level of a cluster
// of several shards reads every shard, and its header's "shard" is -1
// (coord.ShardAll), with revision 0, as for a range across shards.
//
// POST /v1/members/move-leader hands the leadership of "shard" (default 0)
// to the voter "name", as etcdctl move-leader does, and answers once the
// serving member sees the voter lead: 404 not_found for an unknown member,
// 400 for an observer or a shard out of range, 504 timeout when the
// transfer does not complete in time (the voter is down or behind).
//
// A watch's first line carries the header of this member's replica when the
// watch started. Without start_revision the watch delivers exactly the
// changes after that header's revision; with it, every change from
// start_revision on, then live ones. Events come in revision order, each
// once, all events of a revision in one line. To resume after a disconnect,
// ask for start_revision = the last mod_revision received + 1. When history
// the watch needs is compacted, a line carries "compact_revision" (the
// oldest revision left) and an error line with code compacted ends the
// stream: read the current state and watch from its revision. With
// progress_notify, an idle watch sends event-less lines every heartbeat
// interval whose header revision promises that every change up to it has
// been delivered.
//
// GET /health is healthy when every shard has a leader and a linearizable
// read of every shard on this member succeeds within 2 seconds, and the
// member's disk is not nearly full (it would take no writes).
//
// # Binary safety and numbers
//
// Keys and values (and payloads, election values) are arbitrary bytes: in
// JSON they are base64 strings (standard alphabet, with padding), as in
// etcd's JSON gateway. A value missing from a put is the empty value.
// Revisions, lease IDs, offsets, fences and counts are JSON numbers; lease
// IDs are positive. Raft replica IDs ("id", "replica_id", "leader") are
// decimal strings, because they can exceed 2^53, the largest integer a
// JavaScript number holds exactly. Times are RFC 3339.
//
// # Streams
//
// A stream is newline-delimited JSON (Content-Type application/x-ndjson):
// one object per line, each flushed as it is written. A stream idle for the
// heartbeat interval (HeartbeatInterval, at most and by default 10 seconds)
// sends {"heartbeat":true}; skip those lines. A stream that ends for any
// reason but the client going away ends with an error line,
// {"error":{"code","message"}}. A request refused before its stream begins
// (a malformed body, a lock held with try set, no quorum) gets an ordinary
// error response instead, with its status.
//
// Every write to a stream must complete within StreamWriteTimeout (default
// 10 seconds): a client that stops reading, or a dead one whose heartbeats
// fill the connection, is disconnected, and what its stream held is
// released. The handler sets these per-write deadlines itself; the
// http.Server's WriteTimeout does not end streams, nor does its
// ReadTimeout once the request body is read. In HTTP/1.x a stream's
// connection is closed after the stream rather than reused.
//
// At most MaxStreams streams (default 1000) are open at once per handler;
// one more is refused with 503 too_many_streams. Each stream's goroutines
// end when its request ends. http.Server.Shutdown waits for open streams
// without ending them: give the server a BaseContext that you cancel with
// the cause ErrShuttingDown when shutting down (streams then end with an
// "unavailable" error line), or call Server.Close once Shutdown's deadline
// passes.
//
// # Held resources
//
// A lock, an election candidacy and a service registration are held by
// their stream. The handler opens a coord.Session with TTL "ttl_ms" (default
// 10000; coord refuses less than twice the cluster's election timeout),
// acquires the resource, sends a line describing it, and keeps it while the
// stream is open, with heartbeats. It is released (unlock, resign or
// deregister, then the session closed) as soon as the stream ends: the
// client closed it, or a write to it timed out. If the serving member dies,
// the session's TTL frees it. So `curl -N` holding the connection is a lock:
//
//	curl -N -d '{"name":"/locks/deploy"}' http://127.0.0.1:2379/v1/lock/acquire
//
// Until the lock is taken (or the candidate elected) nothing is sent, so
// that a refusal is an error response: "try" fails at once with 409 locked
// when the lock is held or queued for, "wait_ms" bounds the wait (409 locked
// when it runs out; 0 waits until the request ends). A resource lost while
// held (its session expired, its key deleted, the Node closed) ends the
// stream with an error line coded lost; stop acting as its owner.
//
// A lock or an election named NAME is a queue of keys under "NAME/" in the
// ordinary key space, as in etcd (coord/lock, coord/election): a lock and
// an election of the same name share one queue, and any key written under
// "NAME/" by other means, a plain put for instance, queues ahead of later
// waiters and holds them off. Give locks and elections their own
// directories, such as "/locks/" and "/elections/".
//
// POST /v1/lock/release and /v1/election/resign name a held resource by the
// "lease" of its first line: they release it and end its stream, which
// ends with a lost line. They work on the handler that holds it only, and
// answer 404 not_found elsewhere, or when nothing is held under that lease.
// /v1/election/proclaim changes a held leadership's value.
//
// A lock's "fence" is its key's create revision, strictly increasing with
// every new holder: pass it to the resource the lock guards, which must
// refuse a fence older than the newest it has seen (see coord/lock). A
// Leader's "rev" is the same for leadership.
//
// /v1/election/leader and /v1/election/observe read through one session the
// handler grants on first use and keeps alive until the Node closes (package
// election reads through a Session; etcd's election service does the same):
// it shows in /v1/lease/leases. A Leader's "lease" read while that leader is
// already leaving may be 0.
//
// Registrations and lookups live under "prefix" (default "/services"),
// topics under "prefix" (default "/topics"). A registry watch sends the
// current instances (added), then {"type":"synced","instance":null}, then
// every change; with from_revision (a "revision" received earlier) it sends
// only the changes after it. A subscription starts now by default, or at
// "from":"earliest", at an "offset" (that message included), or at the first
// message published at or after "time"; an offset retention has removed
// ends the stream with an error line coded out_of_range whose "earliest" is
// the oldest offset left.
//
// # Snapshots
//
// GET /v1/snapshot streams what coord.Node.Snapshot writes: a backup of every
// key, restorable into a new cluster with coord.Node.Restore. A failure
// after the first byte aborts the response, so the client sees a broken
// transfer, never a complete-looking partial backup (Restore verifies the
// checksum in any case). Its writes have the same deadline as a stream's,
// and it counts toward MaxStreams.
//
// POST /v1/snapshot/restore loads such a backup, sent as the request body
// (any Content-Type), into a cluster that holds no key, with
// coord.Node.Restore: the whole backup is received and its checksum
// verified before anything is written, and keys attached to a lease are
// skipped ("skipped_lease" counts them). It is refused with 409 conflict
// (before the body is read) when the cluster holds keys, or while another
// restore runs on the same handler; with 400 invalid_argument for a body
// that is not a complete backup; with 413 payload_too_large past
// MaxRestoreBytes. The body is passed on as it arrives, without a copy of
// the handler's; each read of it must make progress within
// StreamWriteTimeout. Once the whole backup is received, the restore runs
// to its end even if the client goes away, so that a client's timeout
// never leaves a cluster half restored: read the keys (a range with
// count_only) to see where it stands. Restores through the APIs of two
// members at once are not stopped from both writing: send one. It counts
// toward MaxStreams.
//
// # Retention
//
// POST /v1/pubsub/retention sets a topic's retention (pubsub.Retention:
// the most messages, payload bytes and age it keeps, and how long a
// "msg_id" is remembered; zero or absent: no bound, or the default
// window). The handler itself removes nothing: retention is applied in the
// background by pubsub's RunRetention on the member that leads the topics'
// shard. The member program (cmd/coordkit) runs it for DefaultTopicsPrefix
// (--pubsub-retention-interval); a program that mounts this handler on its
// own Node runs it for the prefixes it serves.
//
// # Integrity
//
// POST /v1/hash/check runs coord.Node.CheckHash: every member hashes each
// shard's state as of one log entry, and the answer lists, per shard,
// {"shard","revision","hashes":[{"member","id","hash"}],"missing"?,
// "corrupt"?}: "hash" in hexadecimal, "missing" the voters that did not
// report in time (the request's deadline, or a minute), "corrupt" the
// members whose hash differed from the most common one. A mismatch raises
// the shard's CORRUPT alarm (GET /v1/alarms): every member then refuses
// the shard's writes with 503 corrupt until POST /v1/alarms/disarm.
//
// # Errors
//
// An error is an HTTP status with the body
//
//	{"error":{"code":"not_found","message":"coord: member not found: \"x\""}}
//
// or, once a stream has begun, the same object as its last line. Codes:
//
//	invalid_argument     400  bad JSON or base64, unknown field, empty or oversized key or
//	                          value, bad option, name or member address, future revision,
//	                          a backup that is not complete and intact
//	unauthenticated      401  BearerToken is set and the request does not carry it
//	not_found            404  unknown lease, member or path; nothing held under the lease here
//	no_leader            404  /v1/election/leader: nobody leads
//	method_not_allowed   405  with an Allow header
//	conflict             409  member exists; restore into a cluster that holds keys, or
//	                          while a restore runs
//	compare_failed       409  if_mod_revision did not match
//	locked               409  try: the lock is held; wait_ms ran out
//	lost                 409  a held resource ended (stream lines)
//	compacted            410  the revision was compacted
//	out_of_range         410  the offset is no longer retained (stream lines; with "earliest")
//	failed_precondition  412  the membership change would lose quorum; retry with "force"
//	                          only to recover from members lost for good
//	payload_too_large    413  see MaxRequestBytes
//	internal             500
//	no_quorum            503  no leader reachable
//	corrupt              503  the write was not applied: the shard's CORRUPT alarm is raised
//	                          (an integrity check found members whose copies diverged)
//	too_many_streams     503  see MaxStreams
//	unavailable          503  the node is closed or the request was cancelled
//	timeout              504
//	no_space             507  the write was not applied: the member's disk is nearly full
//	                          (Config.DiskReserve; another member may take it), or the
//	                          shard reached its quota (Config.MaxStoreBytes; NOSPACE alarm)
//
// A write that timed out after it was proposed may or may not have been
// applied: its message says "outcome unknown"; read the key before retrying.
//
// The handler passes each request's context to coord, so a client that
// disconnects cancels its call. Without a deadline on the request context
// (net/http sets none), coord's Config.RequestTimeout bounds the call.
//
// # Security
//
// The handler does no TLS of its own: TLS, and client certificates if you
// want them, are configured by the application on the http.Server or its
// listener (cmd/coordkit does it). Without BearerToken, anyone who can
// reach the handler can read and write every key, hold every lock and change
// the cluster's membership: serve it on loopback only, or behind TLS and
// authentication:
//
//	srv := &http.Server{Addr: ":2379", TLSConfig: tlsCfg, // ClientAuth: tls.RequireAndVerifyClientCert
//		Handler:           httpapi.New(n, httpapi.BearerToken(os.Getenv("COORD_TOKEN"))),
//		ReadHeaderTimeout: 10 * time.Second}
//	srv.ListenAndServeTLS("", "")
//
// BearerToken requires "Authorization: Bearer <token>" on every request but
// GET /health (so that probes need no secret), compared in constant time; a
// token is only as safe as the channel it crosses, so use it over TLS or
// loopback. There are no per-key permissions: an authenticated client may
// do everything. Even on loopback, a web page open in a local browser can
// send requests: wrap the handler in http.CrossOriginProtection (or an
// equivalent check of Origin) when a browser may run on the same host.
//
// # Limits
//
// Request bodies are limited by MaxRequestBytes (default 4 MiB) and coord's
// own key, value and request limits; open streams by MaxStreams. Every
// resource keeps a session alive, one keep-alive through Raft every third
// of its TTL: MaxStreams also bounds that load. Set the http.Server's
// ReadHeaderTimeout (and ReadTimeout, which streams lift once their body is
// read) against slow clients.
package httpapi
