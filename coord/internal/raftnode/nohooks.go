//go:build !coordkit_faults

package raftnode

// skipReadIndex is never on: the stale-read bug exists only in builds with
// the coordkit_faults tag (hooks.go).
func skipReadIndex(string) bool { return false }
