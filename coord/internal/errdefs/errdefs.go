// Package errdefs defines coordkit's sentinel errors, so that the internal
// parts under coord can return them; package coord exports each one under
// the same name (coord.ErrClosed is errdefs.ErrClosed), and its
// documentation is the reference. Every message starts with "coord: ".
// Match them with errors.Is.
package errdefs

import (
	"errors"
	"fmt"
)

// Errors of the data API and of the member's life. Each is documented
// where package coord exports it.
var (
	ErrClosed          = errors.New("coord: node closed")
	ErrEmptyKey        = errors.New("coord: empty key")
	ErrKeyTooLarge     = errors.New("coord: key too large")
	ErrValueTooLarge   = errors.New("coord: value too large")
	ErrRequestTooLarge = errors.New("coord: request too large")
	ErrTooManyOps      = errors.New("coord: too many operations in txn")
	ErrDuplicateKey    = errors.New("coord: duplicate key in txn")
	ErrCrossShard      = errors.New("coord: operation spans shards")
	ErrCompacted       = errors.New("coord: revision compacted")
	ErrFutureRevision  = errors.New("coord: revision in the future")
	ErrLeaseNotFound   = errors.New("coord: lease not found")
	ErrInvalidTTL      = errors.New("coord: invalid lease TTL")
	ErrNoLeader        = errors.New("coord: no leader")
	ErrOutcomeUnknown  = errors.New("coord: write outcome unknown")
	ErrSessionExpired  = errors.New("coord: session expired")
	ErrInvalidOption   = errors.New("coord: invalid option")
	ErrInvalidConfig   = errors.New("coord: invalid config")
	ErrCorrupt         = errors.New("coord: corrupt data in DataDir")
	ErrNoSpace         = errors.New("coord: no space")
	ErrCorruptAlarm    = errors.New("coord: shard writes stopped by a CORRUPT alarm")
	ErrDiskFailure     = errors.New("coord: the disk failed a write")
)

// ErrInvalidArgument is coord.ErrInvalidArgument.
var ErrInvalidArgument = errors.New("coord: invalid argument")

// Backup errors, documented where package coord exports them.
var (
	ErrNotEmpty  = errors.New("coord: cluster not empty")
	ErrBadBackup = errors.New("coord: bad backup")
)

// Membership errors, documented where package coord exports them.
var (
	ErrMemberExists   = errors.New("coord: member exists")
	ErrMemberNotFound = errors.New("coord: member not found")
	ErrQuorum         = errors.New("coord: change would lose quorum")
)

// Config is ErrInvalidConfig naming a field of coord.Config, with why.
func Config(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}

// Compacted is ErrCompacted from a part: revision Rev was asked for, and
// the shard's oldest available revision is Oldest. Package coord returns
// it as its *CompactedError.
type Compacted struct{ Rev, Oldest int64 }

func (e *Compacted) Error() string {
	return fmt.Sprintf("%v: revision %d, oldest available %d", ErrCompacted, e.Rev, e.Oldest)
}

// Is reports whether target is ErrCompacted.
func (e *Compacted) Is(target error) bool { return target == ErrCompacted }
