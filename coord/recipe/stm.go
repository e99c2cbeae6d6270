package recipe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// ErrTooManyConflicts: an STM's function kept conflicting with other
// writers and ran out of retries (WithRetries).
var ErrTooManyConflicts = errors.New("recipe: STM: too many conflicts")

// Tx is one run of an STM's function: the keys it reads, as of the first
// read of each (a linearizable read), and the writes it buffers until the
// commit. It is not safe for concurrent use: it lives for one run of the
// function only.
type Tx struct {
	ctx    context.Context
	n      *coord.Node
	reads  map[string]*coord.KeyValue // nil value: missing
	writes map[string]*write
	order  []string // write order, for determinism
}

type write struct {
	value  []byte
	delete bool
	opts   []coord.OpOption
}

// Get returns key's value as the transaction sees it: its own write, or
// the value read on first access (nil for a missing key). Errors: those
// of coord's Get; the function should return them.
func (t *Tx) Get(key string) ([]byte, error) {
	if w, ok := t.writes[key]; ok {
		if w.delete {
			return nil, nil
		}
		return w.value, nil
	}
	kv, err := t.read(key)
	if err != nil || kv == nil {
		return nil, err
	}
	return kv.Value, nil
}

// Rev returns key's mod revision as first read (0 for a missing key).
func (t *Tx) Rev(key string) (coord.Revision, error) {
	kv, err := t.read(key)
	if err != nil || kv == nil {
		return 0, err
	}
	return kv.ModRevision, nil
}

func (t *Tx) read(key string) (*coord.KeyValue, error) {
	if kv, ok := t.reads[key]; ok {
		return kv, nil
	}
	g, err := t.n.Get(t.ctx, key)
	if err != nil {
		return nil, err
	}
	var kv *coord.KeyValue
	if len(g.KVs) == 1 {
		kv = g.KVs[0]
	}
	t.reads[key] = kv
	return kv, nil
}

// Put buffers a write of key, applied at the commit (options as for
// coord's Put, such as coord.WithLease).
func (t *Tx) Put(key string, value []byte, opts ...coord.OpOption) {
	t.buffer(key, &write{value: append([]byte(nil), value...), opts: opts})
}

// Delete buffers the deletion of key.
func (t *Tx) Delete(key string) { t.buffer(key, &write{delete: true}) }

func (t *Tx) buffer(key string, w *write) {
	if _, ok := t.writes[key]; !ok {
		t.order = append(t.order, key)
	}
	t.writes[key] = w
}

// STMOption configures STM.
type STMOption func(*stmConfig)

type stmConfig struct{ retries int }

// WithRetries bounds how many times STM runs the function again after a
// conflict (default 100); then it returns ErrTooManyConflicts.
func WithRetries(n int) STMOption { return func(c *stmConfig) { c.retries = n } }

// STM runs fn as a serializable transaction: fn reads keys through the Tx
// (each read once, linearizably, then from the Tx) and buffers writes;
// the writes commit in one coord Txn only if no key fn read was changed
// since it read it (compared by mod revision, a missing key by its absence),
// so the outcome is as if fn had run alone at the commit. On a conflict fn
// runs again on a new Tx, after a short random backoff; it must therefore
// have no effect outside the Tx, and may run several times.
//
// fn returning an error aborts: nothing is written and STM returns the
// error. STM returns the commit's response, or ctx's error, coord's
// errors (coord.ErrCrossShard when the keys span shards), or
// ErrTooManyConflicts.
func STM(ctx context.Context, n *coord.Node, fn func(*Tx) error, opts ...STMOption) (*coord.TxnResponse, error) {
	c := stmConfig{retries: 100}
	for _, o := range opts {
		o(&c)
	}
	backoff := time.Millisecond
	for attempt := 0; ; attempt++ {
		t := &Tx{ctx: ctx, n: n, reads: map[string]*coord.KeyValue{}, writes: map[string]*write{}}
		if err := fn(t); err != nil {
			return nil, err
		}
		r, err := t.commit()
		if err != nil || r.Succeeded {
			return r, err
		}
		if attempt >= c.retries {
			return nil, fmt.Errorf("%w (%d runs)", ErrTooManyConflicts, attempt+1)
		}
		timer := time.NewTimer(backoff + rand.N(backoff))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// commit writes the buffered writes if every key read is unchanged.
func (t *Tx) commit() (*coord.TxnResponse, error) {
	keys := make([]string, 0, len(t.reads))
	for k := range t.reads {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cmps := make([]coord.Cmp, 0, len(keys))
	for _, k := range keys {
		var rev coord.Revision
		if kv := t.reads[k]; kv != nil {
			rev = kv.ModRevision
		}
		cmps = append(cmps, coord.Compare(coord.ModRevision(k), "=", rev))
	}
	ops := make([]coord.Op, 0, len(t.order))
	for _, k := range t.order {
		w := t.writes[k]
		if w.delete {
			ops = append(ops, coord.OpDelete(k))
		} else {
			ops = append(ops, coord.OpPut(k, w.value, w.opts...))
		}
	}
	txn := t.n.Txn(t.ctx)
	if len(cmps) > 0 {
		txn = txn.If(cmps...)
	}
	return txn.Then(ops...).Commit()
}
