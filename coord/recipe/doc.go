// Package recipe holds coordination recipes built on coord's public API
// only, like etcd's concurrency package and Curator's recipes:
//
//   - STM: software transactional memory over keys: a function reads and
//     writes keys; its writes commit atomically only if nothing it read
//     changed meanwhile, and it runs again otherwise (etcd's
//     concurrency.NewSTM, serializable snapshot isolation);
//   - Counter: an atomic int64 counter in one key (Curator's
//     DistributedAtomicLong);
//   - Barrier: processes wait until a holder releases it (Curator's
//     DistributedBarrier);
//   - DoubleBarrier: a group of N processes enters a computation together
//     and leaves it together (Curator's DistributedDoubleBarrier).
//
// Every key a recipe uses must be in one shard (under one top-level
// directory, or any key with one shard): a transaction over several
// shards is refused with coord.ErrCrossShard. Calls block until done or
// ctx ends; errors are those of coord's calls they make, plus the ones
// named here. Values are safe for concurrent use unless said otherwise.
package recipe
