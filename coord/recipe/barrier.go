package recipe

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coordkit/coordkit/coord"
)

// ErrWatchEnded: the watch a barrier waits on ended (the Node closed, or
// history was compacted past it) before the barrier opened.
var ErrWatchEnded = errors.New("recipe: barrier watch ended")

// Barrier holds processes back until it is released: while its key
// exists, Wait blocks. Curator's DistributedBarrier.
type Barrier struct {
	n   *coord.Node
	key string
}

// NewBarrier returns the barrier in key. It does no I/O.
func NewBarrier(n *coord.Node, key string) *Barrier { return &Barrier{n: n, key: key} }

// Hold sets the barrier (creates its key); it stays set until Release,
// or, with coord.WithLease(s.Lease()), until that session ends. Holding a
// held barrier changes nothing.
func (b *Barrier) Hold(ctx context.Context, opts ...coord.OpOption) error {
	_, err := b.n.Txn(ctx).If(coord.Compare(coord.CreateRevision(b.key), "=", 0)).
		Then(coord.OpPut(b.key, nil, opts...)).Commit()
	return err
}

// Release opens the barrier: every Wait returns.
func (b *Barrier) Release(ctx context.Context) error {
	_, err := b.n.Delete(ctx, b.key)
	return err
}

// Wait blocks until the barrier is not held, or ctx ends.
func (b *Barrier) Wait(ctx context.Context) error {
	return waitGone(ctx, b.n, b.key, false)
}

// waitGone blocks until key (every key under key with prefix) is gone,
// from a linearizable read on: no deletion in between is missed.
func waitGone(ctx context.Context, n *coord.Node, key string, prefix bool) error {
	opts := []coord.OpOption{coord.WithCountOnly()}
	if prefix {
		opts = append(opts, coord.WithPrefix())
	}
	g, err := n.Get(ctx, key, opts...)
	if err != nil || g.Count == 0 {
		return err
	}
	left := g.Count
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wopts := []coord.OpOption{coord.WithRev(g.Header.Revision + 1)}
	if prefix {
		wopts = append(wopts, coord.WithPrefix())
	}
	for r := range n.Watch(wctx, key, wopts...) {
		if err := r.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrWatchEnded, err)
		}
		for _, e := range r.Events {
			switch {
			case e.Type == coord.EventDelete:
				left--
			case e.KV.Version == 1: // created
				left++
			}
		}
		if left == 0 {
			return nil
		}
	}
	return ctx.Err()
}

// DoubleBarrier lets a group of Count processes start a computation
// together and finish it together: Enter returns once Count participants
// have entered, Leave once every participant has left. Curator's
// DistributedDoubleBarrier, etcd's recipe. Each participant is a key
// under dir attached to its session, so a participant that dies leaves
// when its session ends. One DoubleBarrier value is one participant; use
// it for one Enter and one Leave.
type DoubleBarrier struct {
	s        *coord.Session
	dir      string
	count    int
	me       string
	readyRev coord.Revision // create revision of this round's ready key
}

// NewDoubleBarrier returns a participant in the double barrier dir (a key
// directory) of count participants, standing with session s. It does no
// I/O.
func NewDoubleBarrier(s *coord.Session, dir string, count int) *DoubleBarrier {
	return &DoubleBarrier{s: s, dir: strings.TrimSuffix(dir, "/") + "/", count: count}
}

func (d *DoubleBarrier) waiters() string { return d.dir + "waiters/" }
func (d *DoubleBarrier) ready() string   { return d.dir + "ready" }

// Enter registers this participant and blocks until count participants
// have entered (the one that completes the group marks it ready), or ctx
// ends. Errors: those of coord's calls, ErrWatchEnded.
func (d *DoubleBarrier) Enter(ctx context.Context) error {
	n := d.s.Node()
	d.me = d.waiters() + fmt.Sprintf("%016x", uint64(d.s.Lease()))
	if _, err := n.Put(ctx, d.me, nil, coord.WithLease(d.s.Lease())); err != nil {
		return err
	}
	g, err := n.Get(ctx, d.waiters(), coord.WithPrefix(), coord.WithCountOnly())
	if err != nil {
		return err
	}
	if g.Count >= int64(d.count) {
		if _, err := n.Txn(ctx).If(coord.Compare(coord.CreateRevision(d.ready()), "=", 0)).
			Then(coord.OpPut(d.ready(), nil)).Commit(); err != nil {
			return err
		}
	}
	// Wait for ready to appear, from the revision read on.
	r, err := n.Get(ctx, d.ready())
	if err != nil {
		return err
	}
	if len(r.KVs) == 1 {
		d.readyRev = r.KVs[0].CreateRevision
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := range n.Watch(wctx, d.ready(), coord.WithRev(r.Header.Revision+1), coord.WithFilterDelete()) {
		if err := w.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrWatchEnded, err)
		}
		if len(w.Events) > 0 {
			d.readyRev = w.Events[0].KV.CreateRevision
			return nil
		}
	}
	return ctx.Err()
}

// Leave removes this participant and blocks until every participant has
// left (or its session ended), or ctx ends; the last one out clears the
// barrier, so the directory can be used again.
func (d *DoubleBarrier) Leave(ctx context.Context) error {
	n := d.s.Node()
	if _, err := n.Delete(ctx, d.me); err != nil {
		return err
	}
	if err := waitGone(ctx, n, d.waiters(), true); err != nil {
		return err
	}
	// Only this round's ready key: a next round may have begun.
	_, err := n.Txn(ctx).If(coord.Compare(coord.CreateRevision(d.ready()), "=", d.readyRev)).
		Then(coord.OpDelete(d.ready())).Commit()
	return err
}
