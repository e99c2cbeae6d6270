package coord

import (
	"context"
	"errors"
	"fmt"

	"github.com/lni/dragonboat/v4"
)

// Sentinel errors. Match them with errors.Is: the errors returned by this
// package wrap them with the context of the failure.
var (
	// ErrClosed: the Node was closed, before or during the call.
	ErrClosed = errors.New("coord: node closed")
	// ErrEmptyKey: a key must be at least one byte.
	ErrEmptyKey = errors.New("coord: empty key")
	// ErrKeyTooLarge: a key is longer than Config.MaxKeyBytes.
	ErrKeyTooLarge = errors.New("coord: key too large")
	// ErrValueTooLarge: a value is longer than Config.MaxValueBytes.
	ErrValueTooLarge = errors.New("coord: value too large")
	// ErrRequestTooLarge: a request encodes to more than Config.MaxRequestBytes.
	ErrRequestTooLarge = errors.New("coord: request too large")
	// ErrTooManyOps: a Txn has more operations than Config.MaxTxnOps.
	ErrTooManyOps = errors.New("coord: too many operations in txn")
	// ErrDuplicateKey: a Txn branch puts the same key twice, or puts a key
	// that it also deletes (as in etcd: the outcome would depend on op order).
	ErrDuplicateKey = errors.New("coord: duplicate key in txn")
	// ErrCrossShard: a Txn or Watch names keys in more than one shard.
	ErrCrossShard = errors.New("coord: operation spans shards")
	// ErrCompacted: the requested revision was removed by compaction.
	ErrCompacted = errors.New("coord: revision compacted")
	// ErrFutureRevision: the requested revision is newer than the shard's.
	ErrFutureRevision = errors.New("coord: revision in the future")
	// ErrLeaseNotFound: the lease does not exist (never granted, revoked or expired).
	ErrLeaseNotFound = errors.New("coord: lease not found")
	// ErrInvalidTTL: a lease TTL is below the minimum the cluster's election
	// timeout permits (see Config.ElectionTimeout) or not positive.
	ErrInvalidTTL = errors.New("coord: invalid lease TTL")
	// ErrNoLeader: no leader could be reached for a shard before the deadline.
	// It is returned wrapped together with context.DeadlineExceeded.
	ErrNoLeader = errors.New("coord: no leader")
	// ErrOutcomeUnknown: a write timed out or was cut off after it was
	// proposed; it may or may not have been applied. Within the deadline,
	// this package proposes a write whose attempt timed out again under the
	// same request ID, which the shard applies at most once; once the
	// deadline has passed it does not retry. Read the key to learn the
	// outcome.
	ErrOutcomeUnknown = errors.New("coord: write outcome unknown")
	// ErrSessionExpired: a Session's lease expired or was revoked.
	ErrSessionExpired = errors.New("coord: session expired")
	// ErrInvalidOption: an option does not apply to the call it was given to,
	// or has a bad argument.
	ErrInvalidOption = errors.New("coord: invalid option")
	// ErrInvalidConfig: Open refused the Config; the message names the field.
	ErrInvalidConfig = errors.New("coord: invalid config")
	// ErrCorrupt: Open found a file of the DataDir that fails its checksum,
	// is cut short, or contradicts the others (the error names it), or the
	// member found that its Raft log lost entries it had acknowledged (see
	// Node.Err). The member does not start, or stops: its state cannot be
	// trusted, and it must not vote, lead or serve with it. Its peers hold
	// every committed write; rebuild the member from them (README, "A
	// corrupt member").
	ErrCorrupt = errors.New("coord: corrupt data in DataDir")
	// ErrNoSpace: the disk that holds the member's DataDir has less free
	// space than Config.DiskReserve, and the member refused the write rather
	// than grow its Raft log: the write was not applied. Write through
	// another member, or free space; the member takes writes again by
	// itself.
	ErrNoSpace = errors.New("coord: the member's disk is nearly full")
)

// translate maps dragonboat's errors to this package's, in one place, so
// that errors.Is(err, context.DeadlineExceeded) and friends hold. write says
// whether the failed request was a proposal whose outcome may be unknown.
func translate(ctx context.Context, err error, write bool) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, dragonboat.ErrTimeout):
		if write {
			return fmt.Errorf("%w: %w", ErrOutcomeUnknown, context.DeadlineExceeded)
		}
		return fmt.Errorf("coord: %w", context.DeadlineExceeded)
	case errors.Is(err, dragonboat.ErrCanceled):
		cause := context.Canceled
		if ctx.Err() != nil {
			cause = ctx.Err()
		}
		if write {
			return fmt.Errorf("%w: %w", ErrOutcomeUnknown, cause)
		}
		return fmt.Errorf("coord: %w", cause)
	case errors.Is(err, dragonboat.ErrAborted), errors.Is(err, dragonboat.ErrRejected):
		if write {
			return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
		}
		return fmt.Errorf("coord: request aborted: %w", err)
	case errors.Is(err, dragonboat.ErrClosed), errors.Is(err, dragonboat.ErrShardClosed),
		errors.Is(err, dragonboat.ErrShardNotFound):
		return ErrClosed
	case errors.Is(err, dragonboat.ErrPayloadTooBig):
		return fmt.Errorf("%w: %w", ErrRequestTooLarge, err)
	case errors.Is(err, dragonboat.ErrShardNotReady), errors.Is(err, dragonboat.ErrSystemBusy),
		errors.Is(err, dragonboat.ErrShardNotInitialized):
		// Only reached once the deadline passed while retrying.
		return fmt.Errorf("%w: %w", ErrNoLeader, context.DeadlineExceeded)
	case errors.Is(err, dragonboat.ErrDeadlineNotSet), errors.Is(err, dragonboat.ErrInvalidDeadline),
		errors.Is(err, dragonboat.ErrTimeoutTooSmall):
		return fmt.Errorf("coord: %w (%v)", context.DeadlineExceeded, err)
	}
	return fmt.Errorf("coord: %w", err)
}

// retryable reports whether dragonboat dropped the request before it entered
// the log (no leader yet, queue full), so sending it again cannot apply it twice.
func retryable(err error) bool {
	return errors.Is(err, dragonboat.ErrShardNotReady) ||
		errors.Is(err, dragonboat.ErrSystemBusy) ||
		errors.Is(err, dragonboat.ErrShardNotInitialized)
}
