package coord

import (
	"bytes"
	"context"
	"fmt"

	"github.com/coordkit/coordkit/coord/internal/member"
	"github.com/coordkit/coordkit/coord/internal/request"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Cmp is one condition of a Txn, built with Compare.
type Cmp struct {
	c   sm.Compare
	err error
}

// CmpTarget names what a Cmp looks at; build one with Value, Version,
// CreateRevision, ModRevision or LeaseValue.
type CmpTarget struct {
	target uint8
	key    string
}

// Value compares a key's value ([]byte or string). A missing key makes
// every value compare false.
func Value(key string) CmpTarget { return CmpTarget{sm.TargetValue, key} }

// Version compares a key's version (0 for a missing key).
func Version(key string) CmpTarget { return CmpTarget{sm.TargetVersion, key} }

// CreateRevision compares a key's create revision (0 for a missing key).
func CreateRevision(key string) CmpTarget { return CmpTarget{sm.TargetCreate, key} }

// ModRevision compares a key's last modification revision (0 for a missing
// key): the compare-and-swap token.
func ModRevision(key string) CmpTarget { return CmpTarget{sm.TargetMod, key} }

// LeaseValue compares the lease a key is attached to (0 for none or missing).
func LeaseValue(key string) CmpTarget { return CmpTarget{sm.TargetLease, key} }

// Compare builds a condition: target op v, op one of "=", "!=", "<", ">".
// v is a []byte or string for Value; a Revision, int64 or int for Version,
// CreateRevision and ModRevision; a LeaseID (or integer) for LeaseValue. A
// mismatch makes Commit fail with ErrInvalidOption.
func Compare(target CmpTarget, op string, v any) Cmp {
	c := Cmp{c: sm.Compare{Target: target.target, Key: target.key}}
	switch op {
	case "=", "==":
		c.c.Result = sm.CmpEqual
	case "!=":
		c.c.Result = sm.CmpNotEqual
	case "<":
		c.c.Result = sm.CmpLess
	case ">":
		c.c.Result = sm.CmpGreater
	default:
		c.err = fmt.Errorf("%w: compare operator %q (want =, !=, < or >)", ErrInvalidOption, op)
		return c
	}
	if target.target == sm.TargetValue {
		switch x := v.(type) {
		case []byte:
			c.c.Value = bytes.Clone(x)
		case string:
			c.c.Value = []byte(x)
		default:
			c.err = fmt.Errorf("%w: Value compare needs []byte or string, got %T", ErrInvalidOption, v)
		}
		return c
	}
	switch x := v.(type) {
	case Revision:
		c.c.Int = int64(x)
	case LeaseID:
		c.c.Int = int64(x)
	case int64:
		c.c.Int = x
	case int:
		c.c.Int = int64(x)
	default:
		c.err = fmt.Errorf("%w: compare needs an integer, got %T", ErrInvalidOption, v)
	}
	return c
}

// Op is one operation of a Txn: OpPut, OpGet or OpDelete.
type Op struct{ op request.Op }

// OpPut is a Put inside a Txn (options as for Put).
func OpPut(key string, value []byte, opts ...OpOption) Op {
	o, err := request.Build(request.Put, opts)
	return Op{request.Op{Kind: sm.OpPut, Key: key, Value: value, Opts: o, Err: err}}
}

// OpGet is a Get inside a Txn, reading the state the Txn sees (options as
// for Get, except WithSerializable and WithRev).
func OpGet(key string, opts ...OpOption) Op {
	o, err := request.Build(request.Get, opts)
	if err == nil && o.Serializable {
		err = fmt.Errorf("%w: WithSerializable inside a Txn", ErrInvalidOption)
	}
	return Op{request.Op{Kind: sm.OpRange, Key: key, Opts: o, Err: err}}
}

// OpDelete is a Delete inside a Txn (options as for Delete).
func OpDelete(key string, opts ...OpOption) Op {
	o, err := request.Build(request.Delete, opts)
	return Op{request.Op{Kind: sm.OpDelete, Key: key, Opts: o, Err: err}}
}

// Txn is an atomic If/Then/Else over the keys of one shard, built with
// Node.Txn. It is not safe for concurrent use; build one per transaction.
type Txn struct {
	n     *Node
	ctx   context.Context
	cmps  []Cmp
	then  []Op
	els   []Op
	calls int
	err   error
}

// Txn starts a transaction. ctx bounds Commit.
func (n *Node) Txn(ctx context.Context) *Txn { return &Txn{n: n, ctx: ctx} }

// If adds conditions, all of which must hold for Then to run. Call it at
// most once, before Then and Else.
func (t *Txn) If(cmps ...Cmp) *Txn {
	if t.calls != 0 && t.err == nil {
		t.err = fmt.Errorf("%w: If after Then or Else", ErrInvalidOption)
	}
	t.calls |= 1
	t.cmps = append(t.cmps, cmps...)
	return t
}

// Then adds the operations run when every condition holds.
func (t *Txn) Then(ops ...Op) *Txn {
	t.calls |= 2
	t.then = append(t.then, ops...)
	return t
}

// Else adds the operations run otherwise.
func (t *Txn) Else(ops ...Op) *Txn {
	t.calls |= 4
	t.els = append(t.els, ops...)
	return t
}

// OpResponse is the outcome of one Op: exactly one field is set.
type OpResponse struct {
	Put    *PutResponse
	Get    *GetResponse
	Delete *DeleteResponse
}

// TxnResponse is the result of a Txn.
type TxnResponse struct {
	Header    Header
	Succeeded bool // whether the conditions held and Then ran
	Responses []OpResponse
}

// Commit runs the transaction atomically, in one revision, on the shard that
// holds all its keys. Every key it compares or touches must be in one shard
// (under one top-level directory, or any keys when Config.Shards is 1),
// otherwise ErrCrossShard. A failed compare is not an error: Succeeded is
// false and Else ran.
//
// Blocking and errors as for Put, plus ErrCrossShard, ErrTooManyOps and
// ErrDuplicateKey (a branch that puts one key twice, or puts a key it also
// deletes). The events of one revision are delivered to watchers in key order.
func (t *Txn) Commit() (*TxnResponse, error) {
	n := t.n
	if t.err != nil {
		return nil, t.err
	}
	rt := request.Txn{Cmps: make([]request.Cmp, len(t.cmps)), Then: make([]request.Op, len(t.then)), Else: make([]request.Op, len(t.els))}
	for i, c := range t.cmps {
		rt.Cmps[i] = request.Cmp{C: c.c, Err: c.err}
	}
	for i, op := range t.then {
		rt.Then[i] = op.op
	}
	for i, op := range t.els {
		rt.Else[i] = op.op
	}
	cmd, si, leased, err := n.m.Limits().Build(&rt, n.m.Router())
	if err != nil {
		return nil, err
	}
	s := n.m.Shards[si]
	res, err := n.commit(t.ctx, s, cmd, leased)
	if err != nil {
		return nil, err
	}
	h := n.header(s, res.Revision)
	resp := &TxnResponse{Header: h, Succeeded: res.Succeeded, Responses: make([]OpResponse, len(res.Ops))}
	for i, r := range res.Ops {
		switch r.Kind {
		case sm.OpPut:
			p := &PutResponse{Header: h}
			if len(r.PrevKVs) > 0 {
				p.PrevKV = fromKV(r.PrevKVs[0])
			}
			resp.Responses[i].Put = p
		case sm.OpDelete:
			resp.Responses[i].Delete = &DeleteResponse{Header: h, Deleted: r.Deleted, PrevKVs: fromKVs(r.PrevKVs)}
		case sm.OpRange:
			resp.Responses[i].Get = &GetResponse{Header: h, KVs: fromKVs(r.KVs), More: r.More, Count: r.Count}
		}
	}
	return resp, nil
}

// commit proposes cmd, a Txn built for shard s, as Txn.Commit and Put do:
// a Txn that puts must find room in the shard (its quota), and each op of
// leased, cmd's ops with a lease, gets the lease's TTL from its home shard.
// It returns the applied result, or the state machine's refusal as an
// error.
func (n *Node) commit(ctx context.Context, s *member.Shard, cmd *sm.Command, leased []*sm.Op) (*sm.Result, error) {
	if sm.HasPut(&cmd.Txn) {
		if err := n.m.Room(ctx, s); err != nil {
			return nil, err
		}
	}
	for _, op := range leased {
		if err := n.m.Leases.Resolve(ctx, s.Index, op); err != nil {
			return nil, err
		}
	}
	res, err := s.Propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if err := res.Code.Err(); err != nil {
		return nil, err
	}
	return res, nil
}
