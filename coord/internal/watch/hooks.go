//go:build coordkit_faults

package watch

import "github.com/coordkit/coordkit/coord/internal/hooks"

// dropped reports whether the robustness suite's lost-event bug is on for
// this event (hooks.DropWatchEvent). Only builds with the coordkit_faults
// tag have it.
func (h *Hub) dropped(rev int64) bool {
	drop := hooks.DropWatchEvent.Load()
	return drop != nil && (*drop)(h.member, rev)
}
