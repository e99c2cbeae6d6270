package request

import (
	"fmt"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Op is one operation of a transaction, as coord.OpPut, OpGet and
// OpDelete build it.
type Op struct {
	Kind  uint8 // sm.OpPut, sm.OpRange, sm.OpDelete
	Key   string
	Value []byte
	Opts  *Options
	Err   error // a bad option, reported by Commit
}

// Cmp is one condition of a transaction, as coord.Compare builds it.
type Cmp struct {
	C   sm.Compare
	Err error // a bad operator or value, reported by Commit
}

// Txn is a transaction to build: conditions, and the operations of each
// branch.
type Txn struct {
	Cmps       []Cmp
	Then, Else []Op
}

// Build checks t against the limits and builds its command; it returns the
// shard that holds every key it compares or touches (0 for an empty
// transaction), and the operations that attach a key to a lease (pointers
// into the command), which must be resolved in that shard before it is
// proposed. Values are not copied: encode the command before the caller's
// slices may change. Errors: ErrTooManyOps, ErrCrossShard, and those of
// the keys, values and options.
func (l Limits) Build(t *Txn, r Router) (cmd *sm.Command, shard int, leased []*sm.Op, err error) {
	if len(t.Cmps)+len(t.Then) > l.MaxTxnOps || len(t.Cmps)+len(t.Else) > l.MaxTxnOps {
		return nil, 0, nil, fmt.Errorf("%w: limit %d", errdefs.ErrTooManyOps, l.MaxTxnOps)
	}
	si := -2
	use := func(key, end string) error {
		s := r.RangeShard(key, end)
		if s < 0 || (si >= 0 && s != si) {
			return fmt.Errorf("%w: key %q", errdefs.ErrCrossShard, key)
		}
		si = s
		return nil
	}
	cmd = &sm.Command{Kind: sm.CmdTxn}
	for _, c := range t.Cmps {
		if c.Err != nil {
			return nil, 0, nil, c.Err
		}
		if err := l.CheckKey(c.C.Key); err != nil {
			return nil, 0, nil, err
		}
		if err := use(c.C.Key, ""); err != nil {
			return nil, 0, nil, err
		}
		cmd.Txn.Compares = append(cmd.Txn.Compares, c.C)
	}
	build := func(ops []Op) ([]sm.Op, error) {
		out := make([]sm.Op, 0, len(ops))
		for _, op := range ops {
			so, err := l.op(op)
			if err != nil {
				return nil, err
			}
			if err := use(so.Key, so.End); err != nil {
				return nil, err
			}
			out = append(out, so)
		}
		return out, nil
	}
	if cmd.Txn.Then, err = build(t.Then); err != nil {
		return nil, 0, nil, err
	}
	if cmd.Txn.Else, err = build(t.Else); err != nil {
		return nil, 0, nil, err
	}
	for _, ops := range [][]sm.Op{cmd.Txn.Then, cmd.Txn.Else} {
		for i := range ops {
			if ops[i].Lease != 0 {
				leased = append(leased, &ops[i])
			}
		}
	}
	return cmd, max(si, 0), leased, nil
}

// op checks one operation and builds it.
func (l Limits) op(op Op) (sm.Op, error) {
	if op.Err != nil {
		return sm.Op{}, op.Err
	}
	so := sm.Op{Kind: op.Kind, Key: op.Key}
	switch op.Kind {
	case sm.OpPut:
		if err := l.CheckKey(op.Key); err != nil {
			return sm.Op{}, err
		}
		if err := l.CheckValue(op.Value); err != nil {
			return sm.Op{}, err
		}
		so.Value, so.Lease, so.PrevKV = op.Value, op.Opts.Lease, op.Opts.PrevKV
		if so.Value == nil {
			so.Value = []byte{}
		}
	case sm.OpDelete, sm.OpRange:
		if err := l.CheckRange(op.Key, op.Opts); err != nil {
			return sm.Op{}, err
		}
		so.End, so.PrevKV = op.Opts.RangeEnd(op.Key), op.Opts.PrevKV
		if op.Kind == sm.OpRange {
			if op.Opts.Rev != 0 {
				return sm.Op{}, fmt.Errorf("%w: WithRev inside a Txn", errdefs.ErrInvalidOption)
			}
			so.Range = op.Opts.RangeOpts()
		}
	}
	return so, nil
}
