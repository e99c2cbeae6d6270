package recipe

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/coordkit/coordkit/coord"
)

// ErrNotACounter: a counter's key holds something that is not a decimal
// int64.
var ErrNotACounter = errors.New("recipe: not a counter")

// Counter is an atomic int64 kept in one key as decimal text (so etcdctl
// and coordctl show it), 0 while the key is missing. Every change is a
// compare-and-swap on the key's mod revision, retried on conflict.
type Counter struct {
	n   *coord.Node
	key string
}

// NewCounter returns the counter in key. It does no I/O.
func NewCounter(n *coord.Node, key string) *Counter { return &Counter{n: n, key: key} }

// Get returns the counter's value (linearizable). Errors: ErrNotACounter,
// those of coord's Get.
func (c *Counter) Get(ctx context.Context) (int64, error) {
	v, _, err := c.read(ctx)
	return v, err
}

func (c *Counter) read(ctx context.Context) (int64, coord.Revision, error) {
	g, err := c.n.Get(ctx, c.key)
	if err != nil || len(g.KVs) == 0 {
		return 0, 0, err
	}
	kv := g.KVs[0]
	v, err := strconv.ParseInt(string(kv.Value), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %s holds %q", ErrNotACounter, c.key, kv.Value)
	}
	return v, kv.ModRevision, nil
}

// Add adds delta and returns the new value, atomically: concurrent Adds
// from any member all count. It retries on conflict until ctx ends.
// Errors: ErrNotACounter, ctx's, those of coord's Txn.
func (c *Counter) Add(ctx context.Context, delta int64) (int64, error) {
	return c.update(ctx, func(v int64) int64 { return v + delta })
}

// Set sets the counter to v.
func (c *Counter) Set(ctx context.Context, v int64) error {
	_, err := c.n.Put(ctx, c.key, []byte(strconv.FormatInt(v, 10)))
	return err
}

// CompareAndSet sets the counter to next if it holds old, and reports
// whether it did.
func (c *Counter) CompareAndSet(ctx context.Context, old, next int64) (bool, error) {
	v, rev, err := c.read(ctx)
	if err != nil || v != old {
		return false, err
	}
	r, err := c.n.Txn(ctx).If(coord.Compare(coord.ModRevision(c.key), "=", rev)).
		Then(coord.OpPut(c.key, []byte(strconv.FormatInt(next, 10)))).Commit()
	if err != nil {
		return false, err
	}
	if !r.Succeeded {
		return c.CompareAndSet(ctx, old, next) // changed meanwhile: look again
	}
	return true, nil
}

func (c *Counter) update(ctx context.Context, f func(int64) int64) (int64, error) {
	for {
		v, rev, err := c.read(ctx)
		if err != nil {
			return 0, err
		}
		next := f(v)
		r, err := c.n.Txn(ctx).If(coord.Compare(coord.ModRevision(c.key), "=", rev)).
			Then(coord.OpPut(c.key, []byte(strconv.FormatInt(next, 10)))).Commit()
		if err != nil {
			return 0, err
		}
		if r.Succeeded {
			return next, nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}
