// Package compactor keeps a shard's history (old versions of keys, and
// deletes, kept for watches and reads at past revisions) to a number of
// revisions: while this member leads the shard, it proposes a compaction
// whenever the history grew a tenth past what is kept. Every replica applies
// the compaction, so history is bounded on all of them.
package compactor

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Shard is what the compactor needs of its shard replica (a
// raftnode.Shard).
type Shard interface {
	// Leads reports whether this member leads the shard.
	Leads() bool
	// Revisions returns the replica's revision and compaction revision
	// without taking a View (a View every tick would make the next writes
	// copy the store's tree nodes).
	Revisions() (rev, compactRev int64)
	// Propose commits a command and returns its result.
	Propose(ctx context.Context, cmd *sm.Command) (*sm.Result, error)
}

// Every is how often the compactor looks at the history. Between two
// looks the history grows by whatever is written meanwhile, on top of what
// it keeps: at 25,000 writes a second, a look every 5 s let it reach 12
// times a retention of 10,000 revisions, the revision index alone then
// 15% of the heap under bench's put-256. A look costs two atomic loads.
const Every = time.Second

// Run compacts s's history to keep revisions, every Every while this member
// leads the shard, until ctx ends. Each proposal is bounded by timeout.
func Run(ctx context.Context, s Shard, keep int64, timeout time.Duration, log *slog.Logger) {
	t := time.NewTicker(Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.Leads() {
			continue
		}
		cur, compacted := s.Revisions()
		rev, ok := Due(cur, compacted, keep)
		if !ok {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := s.Propose(pctx, &sm.Command{Kind: sm.CmdCompact, Revision: rev})
		cancel()
		if err != nil && !errors.Is(err, errdefs.ErrClosed) {
			log.Debug("history compaction not committed", "err", err)
		}
	}
}

// Due reports whether a replica at revision rev, compacted to compactRev,
// holds more than keep revisions of history and a tenth, and the revision
// to compact to, which leaves keep.
func Due(rev, compactRev, keep int64) (to int64, ok bool) {
	if rev-compactRev <= keep+keep/10 {
		return 0, false
	}
	return rev - keep, true
}
