//go:build coordkit_faults

package raftnode

import "github.com/coordkit/coordkit/coord/internal/hooks"

// skipReadIndex reports whether the robustness suite's stale-read bug is
// switched on for member name (hooks.SkipReadIndex). Only builds with the
// coordkit_faults tag have it.
func skipReadIndex(name string) bool {
	f := hooks.SkipReadIndex.Load()
	return f != nil && (*f)(name)
}
