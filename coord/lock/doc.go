// Package lock provides distributed locks on coordkit, built on coord's
// public API only: Mutex, RWMutex and Semaphore.
//
// Every lock is a queue of keys under the lock's name, each attached to its
// owner's Session lease. Waiters are served in arrival order, and each
// watches only the waiter just before it, so releasing a lock with many
// waiters wakes one. A holder whose process dies is released once its
// session's TTL runs out; one that unlocks, or closes its Session or Node,
// releases at once.
//
// # Fencing
//
// A lock cannot by itself protect a resource outside coordkit: a holder can
// be paused long enough for its session to expire while another process
// takes the lock (Jepsen showed this with etcd's locks). Each hold therefore
// has a fencing token, Fence, strictly increasing with every new holder;
// pass it with every write to the resource, and have the resource refuse a
// token older than the newest it has seen. Inside coordkit, put IsOwner in a
// Txn's If so a write happens only while the lock is held.
//
// # Losing a lock
//
// Done is closed and Err reports ErrLost when a held lock ends without
// Unlock: its session expired or was closed, or its key was deleted.
package lock
