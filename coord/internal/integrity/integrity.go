// Package integrity is a member's side of the integrity check of a shard
// (see coord/internal/sm, integrity.go): while the member leads the shard
// it starts a check every interval (CmdHashCheck), and whenever its replica
// applies a check it hashes the state as of the check and reports the hash
// (CmdHashReport). The state machine compares the reports and raises the
// CORRUPT alarm when they differ.
package integrity

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Shard is what the checker needs of its shard replica (a raftnode.Shard).
type Shard interface {
	// Leads reports whether this member leads the shard.
	Leads() bool
	// View returns the replica's latest state.
	View() *sm.View
	// Propose commits a command and returns its result.
	Propose(ctx context.Context, cmd *sm.Command) (*sm.Result, error)
}

// Checker runs one shard replica's side of integrity checks. Requested is
// safe to call from any goroutine; Run runs once.
type Checker struct {
	s       Shard
	self    uint64 // this member's replica ID
	timeout time.Duration
	log     *slog.Logger
	pending chan request // holds the latest check to hash, if any
}

type request struct {
	index uint64
	view  *sm.View
}

// New returns the checker of replica self of s; each proposal it makes is
// bounded by timeout.
func New(s Shard, self uint64, timeout time.Duration, log *slog.Logger) *Checker {
	return &Checker{s: s, self: self, timeout: timeout, log: log, pending: make(chan request, 1)}
}

// Requested takes the state v as of the check at Raft index index, to
// hash and report; it never blocks (it is the state machine listener's).
// A check requested while an earlier one waits replaces it: the state
// machine counts reports for its latest check only.
func (c *Checker) Requested(index uint64, v *sm.View) {
	r := request{index: index, view: v}
	for {
		select {
		case c.pending <- r:
			return
		default:
		}
		select {
		case <-c.pending:
		default:
		}
	}
}

// Run hashes and reports every check requested, and, while this member
// leads the shard, starts a check every interval (never when interval is
// not positive), until ctx ends.
func (c *Checker) Run(ctx context.Context, interval time.Duration) {
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-c.pending:
			c.report(ctx, r)
		case <-tick:
			if c.s.Leads() {
				c.propose(ctx, &sm.Command{Kind: sm.CmdHashCheck}, "integrity check not started")
			}
		}
	}
}

// report hashes r's state and proposes the hash, unless the shard has
// moved on to a later check or already holds this replica's report (a
// check replayed from the log at a restart).
func (c *Checker) report(ctx context.Context, r request) {
	if !c.wanted(r.index) {
		return
	}
	h := r.view.Hash()
	for attempt := 0; attempt < 3 && ctx.Err() == nil && c.wanted(r.index); attempt++ {
		if c.propose(ctx, &sm.Command{Kind: sm.CmdHashReport, Check: r.index, Replica: c.self, Hash: h}, "integrity report not committed") {
			return
		}
	}
}

// wanted reports whether the shard's latest check is index and lacks this
// replica's report.
func (c *Checker) wanted(index uint64) bool {
	hc, ok := c.s.View().HashCheck()
	if !ok || hc.Index != index || hc.Disarmed {
		return false
	}
	for _, r := range hc.Reports {
		if r.Replica == c.self {
			return false
		}
	}
	return true
}

// propose commits cmd within the timeout and reports whether it did.
func (c *Checker) propose(ctx context.Context, cmd *sm.Command, failure string) bool {
	pctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.s.Propose(pctx, cmd)
	if err != nil && !errors.Is(err, errdefs.ErrClosed) {
		c.log.Debug(failure, "err", err)
	}
	return err == nil
}
