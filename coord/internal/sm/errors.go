package sm

import (
	"fmt"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
)

// Err is the error a caller gets for a command that ended with c: nil for
// CodeOK, else coordkit's error for it (coord/internal/errdefs).
func (c Code) Err() error {
	switch c {
	case CodeOK:
		return nil
	case CodeLeaseNotFound:
		return errdefs.ErrLeaseNotFound
	case CodeCompacted:
		return errdefs.ErrCompacted
	case CodeFutureRevision:
		return errdefs.ErrFutureRevision
	case CodeDuplicateKey:
		return errdefs.ErrDuplicateKey
	case CodeResultLost:
		return fmt.Errorf("%w: the write was applied once, but its result was too large to keep for the retry that asked", errdefs.ErrOutcomeUnknown)
	case CodeNoSpace:
		return fmt.Errorf("%w: the shard's store is at its quota (NOSPACE alarm): delete and compact, then disarm the alarm", errdefs.ErrNoSpace)
	case CodeCorrupt:
		return fmt.Errorf("%w: an integrity check found this shard's replicas diverged; replace the members the alarm names, then disarm it", errdefs.ErrCorruptAlarm)
	case CodeStale:
		return fmt.Errorf("%w: the write was overtaken by a later one of the same client", errdefs.ErrOutcomeUnknown)
	}
	return fmt.Errorf("coord: request refused by the state machine (code %d)", c)
}
