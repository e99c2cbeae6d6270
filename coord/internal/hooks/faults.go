//go:build coordkit_faults

package hooks

import "sync/atomic"

// SkipReadIndex, when set and returning true for a member's name, makes that
// member serve linearizable reads from its replica without a ReadIndex
// round: a deliberate stale-read bug, to prove the checker catches it.
var SkipReadIndex atomic.Pointer[func(member string) bool]

// DropWatchEvent, when set and returning true for a member's name and an
// event's revision, makes that member's watchers skip the event: a
// deliberate lost-event bug, to prove the watch checker catches it.
var DropWatchEvent atomic.Pointer[func(member string, rev int64) bool]
