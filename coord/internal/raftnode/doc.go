// Package raftnode runs one member's dragonboat NodeHost and its replica of
// every shard, for package coord. It owns everything coordkit does with
// dragonboat:
//
//   - start and restart: the NodeHost configuration, each shard's replica
//     and state machine (coord/internal/sm), the replay of the local log
//     before a restarted member serves (Recover), the restart as a voter
//     of an observer promoted while it was down, and the campaign of a
//     member that is a shard's only voter;
//   - requests: proposals and linearizable reads (ReadIndex), each made in
//     bounded attempts and retried, with the request clients through which
//     the state machine applies a write at most once;
//   - outcomes: the one table (outcome.go) that turns dragonboat's errors
//     into coordkit's (coord/internal/errdefs);
//   - what peers send, screened before dragonboat sees it (guard.go): a
//     restarted replica's log checked against its leader's heartbeat, and
//     nothing that would grow the log while the disk is nearly full;
//   - membership reads and changes, leadership transfers, leader and role
//     tracking for the peer transport (coord/internal/peer);
//   - the member's life: a context that ends, with its cause, when the
//     member closes or stops itself (Host.Context), and Close.
//
// It knows nothing of keys, watches, leases or the public API: the state
// machine's listener and the callbacks in Config connect it to the rest of
// coord. Every method is safe for concurrent use. A Shard's requests block
// until they complete, their context ends or the Host closes; none blocks
// past Host.Stop.
package raftnode
