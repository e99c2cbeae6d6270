package coord

import (
	"errors"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
)

// Sentinel errors. Match them with errors.Is: the errors returned by this
// package wrap them with the context of the failure. (They are defined in
// coord/internal/errdefs, so that coord's internal parts return the same
// values.)
var (
	// ErrClosed: the Node was closed, before or during the call.
	ErrClosed = errdefs.ErrClosed
	// ErrEmptyKey: a key must be at least one byte.
	ErrEmptyKey = errdefs.ErrEmptyKey
	// ErrKeyTooLarge: a key is longer than Config.MaxKeyBytes.
	ErrKeyTooLarge = errdefs.ErrKeyTooLarge
	// ErrValueTooLarge: a value is longer than Config.MaxValueBytes.
	ErrValueTooLarge = errdefs.ErrValueTooLarge
	// ErrRequestTooLarge: a request encodes to more than Config.MaxRequestBytes.
	ErrRequestTooLarge = errdefs.ErrRequestTooLarge
	// ErrTooManyOps: a Txn has more operations than Config.MaxTxnOps.
	ErrTooManyOps = errdefs.ErrTooManyOps
	// ErrDuplicateKey: a Txn branch puts the same key twice, or puts a key
	// that it also deletes (as in etcd: the outcome would depend on op order).
	ErrDuplicateKey = errdefs.ErrDuplicateKey
	// ErrCrossShard: a Txn or Watch names keys in more than one shard.
	ErrCrossShard = errdefs.ErrCrossShard
	// ErrCompacted: the requested revision was removed by compaction. Reads
	// and watches return it as a *CompactedError, which says the oldest
	// revision still available.
	ErrCompacted = errdefs.ErrCompacted
	// ErrFutureRevision: the requested revision is newer than the shard's.
	ErrFutureRevision = errdefs.ErrFutureRevision
	// ErrLeaseNotFound: the lease does not exist (never granted, revoked or expired).
	ErrLeaseNotFound = errdefs.ErrLeaseNotFound
	// ErrInvalidTTL: a lease TTL is below the minimum the cluster's election
	// timeout permits (see Config.ElectionTimeout) or not positive.
	ErrInvalidTTL = errdefs.ErrInvalidTTL
	// ErrNoLeader: no leader could be reached for a shard before the deadline.
	// It is returned wrapped together with context.DeadlineExceeded.
	ErrNoLeader = errdefs.ErrNoLeader
	// ErrOutcomeUnknown: a write timed out or was cut off after it was
	// proposed; it may or may not have been applied. Within the deadline,
	// this package proposes a write whose attempt timed out again under the
	// same request ID, which the shard applies at most once; once the
	// deadline has passed it does not retry. Read the key to learn the
	// outcome.
	ErrOutcomeUnknown = errdefs.ErrOutcomeUnknown
	// ErrSessionExpired: a Session's lease expired or was revoked.
	ErrSessionExpired = errdefs.ErrSessionExpired
	// ErrInvalidOption: an option does not apply to the call it was given to,
	// or has a bad argument.
	ErrInvalidOption = errdefs.ErrInvalidOption
	// ErrInvalidConfig: Open refused the Config; the message names the field.
	ErrInvalidConfig = errdefs.ErrInvalidConfig
	// ErrInvalidArgument: a call was given an argument it cannot use (a
	// shard out of range, an empty member name or a bad address, a member
	// in the wrong role for the call); the message names it. Nothing was
	// changed. Options are checked separately (ErrInvalidOption), and so is
	// the Config (ErrInvalidConfig).
	ErrInvalidArgument = errdefs.ErrInvalidArgument
	// ErrCorrupt: Open found a file of the DataDir that fails its checksum,
	// is cut short, or contradicts the others (the error names it), or the
	// member found that its Raft log lost entries it had acknowledged, or
	// dragonboat stopped on a state it cannot go on from (the error quotes
	// it; every member of the process stops then: which one it was is not
	// known) (see Node.Err). The member does not start, or stops: its state cannot be
	// trusted, and it must not vote, lead or serve with it. Its peers hold
	// every committed write; rebuild the member from them (README, "A
	// corrupt member").
	ErrCorrupt = errdefs.ErrCorrupt
	// ErrNoSpace: the write was not applied, for lack of space. Either
	// the disk that holds the member's DataDir has less free space than
	// Config.DiskReserve, and the member refused the write rather than grow
	// its Raft log (write through another member, or free space: the
	// member takes writes again by itself); or the shard's store reached
	// Config.MaxStoreBytes and its NOSPACE alarm is raised (delete and
	// compact, then Node.DisarmAlarms).
	ErrNoSpace = errdefs.ErrNoSpace
	// ErrCorruptAlarm: the write was not applied because the shard's
	// CORRUPT alarm is raised: an integrity check found members whose
	// copies of the shard differ (Node.Alarms names them). Every member
	// refuses the shard's writes (reads, keep-alives and membership changes
	// go on) until the alarm is disarmed: remove the members it names and
	// add them back with empty DataDirs, so that they copy a good replica,
	// then Node.DisarmAlarms.
	ErrCorruptAlarm = errdefs.ErrCorruptAlarm
	// ErrDiskFailure: a write, sync or file creation in the member's Raft
	// directory (DataDir/raft) failed: an I/O error, or a full disk past
	// Config.DiskReserve. The member stopped itself (Node.Err wraps this
	// and names the file); its Node is closed, and calls fail with
	// ErrClosed wrapping the same cause. The host process goes on. Nothing
	// the member could not keep was acknowledged, to a caller or to its
	// peers. The call into the disk that failed never returns, so the
	// member's storage stays open until the process exits: mend the disk,
	// then restart the process to reopen the member from its DataDir.
	ErrDiskFailure = errdefs.ErrDiskFailure
)

// CompactedError is the error of a read or watch at a revision that
// compaction removed: errors.Is(err, ErrCompacted) holds, and errors.As
// gives the oldest revision still available, from which to read or watch
// again.
type CompactedError struct {
	// Revision is the revision asked for.
	Revision Revision
	// Oldest is the oldest revision still available in the shard: its
	// compaction point.
	Oldest Revision
}

func (e *CompactedError) Error() string {
	return (&errdefs.Compacted{Rev: int64(e.Revision), Oldest: int64(e.Oldest)}).Error()
}

// Is reports whether target is ErrCompacted.
func (e *CompactedError) Is(target error) bool { return target == ErrCompacted }

// compacted is err, with a part's *errdefs.Compacted made a *CompactedError.
func compacted(err error) error {
	var c *errdefs.Compacted
	if errors.As(err, &c) {
		return &CompactedError{Revision: Revision(c.Rev), Oldest: Revision(c.Oldest)}
	}
	return err
}
