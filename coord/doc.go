// Package coord is coordkit's core: an embedded member of a strongly
// consistent, replicated key-value store with MVCC history, transactions,
// watches, leases and sessions, on dragonboat multi-group Raft.
//
// A service opens a Node with Open and is then a member of the cluster: reads
// and watches are served from its own replica, writes go through the Raft
// leader of the key's shard. There is no server to run or call.
//
// # Consistency
//
// Reads are linearizable unless WithSerializable is given, which reads the
// local replica with no network. Writes return once applied on the calling
// member. A Txn is atomic over the keys of one shard; keys under one
// top-level directory ("/orders/...") always share a shard.
//
// # Errors
//
// Errors are sentinels (ErrCompacted, ErrCrossShard, ErrLeaseNotFound, ...)
// matched with errors.Is; timeouts and cancellation also match
// context.DeadlineExceeded and context.Canceled. Writes are applied at most
// once: each carries a request ID, and an attempt lost on its way to the
// leader is proposed again under it within the caller's deadline. A write
// whose deadline passed while it may or may not have been applied returns
// ErrOutcomeUnknown.
//
// # Lifetimes
//
// Every blocking call takes a context.Context first. Node.Close is
// idempotent and waits for every goroutine the Node started; Node.Shutdown
// bounds how long its clean part may take. Watch channels and Sessions
// report why they ended (WatchResponse.Err, Session.Err).
//
// # Layout
//
// This package is the public API, a facade: it checks each call's
// arguments and converts between its types and the internal parts', which
// never import it (a test enforces the layering). coord/internal/member
// assembles a member from the parts (Open and Shutdown, the Config's
// defaults and checks, requests served on one shard or merged over all);
// coord/internal/raftnode runs dragonboat (start and restart, proposals and
// reads with their retries, the one table of dragonboat's outcomes, the log
// and disk guards, membership calls); coord/internal/sm is the replicated
// state machine; coord/internal/watch, lease and compactor follow each
// shard's state (watchers, lease expiry and sessions, history compaction);
// coord/internal/request builds commands from calls; members, admit, boot,
// meta and backup manage membership, observer admission, a member's
// identity and files, and backups; coord/internal/errdefs defines the
// errors this package exports.
package coord
