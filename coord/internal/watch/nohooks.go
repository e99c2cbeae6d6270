//go:build !coordkit_faults

package watch

// dropped is never true: the lost-event bug exists only in builds with the
// coordkit_faults tag (hooks.go).
func (h *Hub) dropped(int64) bool { return false }
