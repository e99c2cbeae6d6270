package sm

import (
	"encoding/binary"
	"errors"
)

// codecVersion is the first byte of every encoded command, result and
// snapshot. A decoder refuses any version it does not know instead of
// guessing.
const (
	codecVersion = 1
	// reqVersion starts a command that carries a request ID (Client, Seq).
	reqVersion = 2
	// snapshotVersion 2 adds the request table to version 1; 3 the NOSPACE
	// alarm; 4 the integrity check and the CORRUPT alarm.
	snapshotVersion = 4
)

// errDecode is returned for any malformed input; decoders never panic.
var errDecode = errors.New("sm: malformed encoding")

// maxDecodeItems bounds the lengths a decoder will believe before allocating,
// so a corrupt length cannot make it allocate gigabytes.
const maxDecodeItems = 1 << 20

type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)     { e.b = append(e.b, v) }
func (e *encoder) uvar(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) svar(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string)   { e.uvar(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytes(p []byte) { e.uvar(uint64(len(p))); e.b = append(e.b, p...) }
func (e *encoder) flag(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err = errDecode; d.b = nil }

func (d *decoder) u8() uint8 {
	if d.err != nil || len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvar() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) svar() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// length reads a length prefix and checks it against limit, which is
// evaluated after the prefix is consumed: limit(remaining bytes).
func (d *decoder) length(limit func(rest int) int) int {
	n := d.uvar()
	if d.err != nil || n > uint64(limit(len(d.b))) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) raw() []byte {
	n := d.length(func(rest int) int { return rest })
	if d.err != nil {
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) str() string { return string(d.raw()) }

// bytes copies, so decoded values never alias the Raft entry's buffer.
func (d *decoder) bytes() []byte {
	p := d.raw()
	if p == nil {
		return nil
	}
	return append([]byte(nil), p...)
}

// liveValue copies a put's value into a buffer with room for a live
// version's header before it (see live), and returns both; the value is
// nil when empty, as bytes returns it.
func (d *decoder) liveValue() (value, buf []byte) {
	p := d.raw()
	if d.err != nil {
		return nil, nil
	}
	buf = newLiveBuf(p)
	if len(p) > 0 {
		value = buf[liveHeader:len(buf):len(buf)]
	}
	return value, buf
}

func (d *decoder) flag() bool {
	switch d.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail()
	return false
}

func (d *decoder) count() int {
	// Every item takes at least one byte, which bounds a believable count.
	return d.length(func(rest int) int { return min(rest, maxDecodeItems) })
}

// EncodeCommand returns the wire form of c.
func EncodeCommand(c *Command) []byte {
	e := &encoder{b: make([]byte, 0, commandSize(c))}
	if c.Client != 0 {
		e.u8(reqVersion)
		e.uvar(c.Client)
		e.uvar(c.Seq)
	} else {
		e.u8(codecVersion)
	}
	e.u8(c.Kind)
	switch c.Kind {
	case CmdTxn:
		e.uvar(uint64(len(c.Txn.Compares)))
		for i := range c.Txn.Compares {
			cp := &c.Txn.Compares[i]
			e.u8(cp.Target)
			e.u8(cp.Result)
			e.str(cp.Key)
			e.bytes(cp.Value)
			e.svar(cp.Int)
		}
		encodeOps(e, c.Txn.Then)
		encodeOps(e, c.Txn.Else)
	case CmdCompact:
		e.svar(c.Revision)
	case CmdGrant:
		e.svar(c.LeaseID)
		e.svar(c.TTL)
	case CmdRevoke, CmdKeepAlive:
		e.svar(c.LeaseID)
	case CmdMember:
		e.uvar(c.Member.ID)
		e.str(c.Member.Name)
		e.str(c.Member.Address)
	case CmdAlarm:
		e.u8(c.Alarm)
		e.flag(c.Activate)
	case CmdHashCheck:
	case CmdHashReport:
		e.uvar(c.Check)
		e.uvar(c.Replica)
		e.uvar(c.Hash)
	case CmdExpire:
		e.uvar(uint64(len(c.Expire)))
		for _, it := range c.Expire {
			e.svar(it.ID)
			e.uvar(it.Renew)
		}
	}
	return e.b
}

// commandSize is about the size of c's wire form, so that encoding it
// allocates once: an op's fixed fields take under 32 bytes.
func commandSize(c *Command) int {
	n := 64
	for i := range c.Txn.Compares {
		n += 32 + len(c.Txn.Compares[i].Key) + len(c.Txn.Compares[i].Value)
	}
	for _, ops := range [][]Op{c.Txn.Then, c.Txn.Else} {
		for i := range ops {
			n += 32 + len(ops[i].Key) + len(ops[i].End) + len(ops[i].Value)
		}
	}
	return n
}

func encodeOps(e *encoder, ops []Op) {
	e.uvar(uint64(len(ops)))
	for i := range ops {
		op := &ops[i]
		e.u8(op.Kind)
		e.str(op.Key)
		e.str(op.End)
		e.bytes(op.Value)
		e.svar(op.Lease)
		e.svar(op.LeaseTTL)
		e.flag(op.PrevKV)
		r := &op.Range
		e.svar(r.Limit)
		e.svar(r.Revision)
		e.flag(r.KeysOnly)
		e.flag(r.CountOnly)
		e.u8(r.SortTarget)
		e.flag(r.SortDesc)
		e.flag(r.Sorted)
		e.svar(r.MinCreate)
		e.svar(r.MaxCreate)
	}
}

// DecodeCommand parses b. Any malformed input, unknown version or unknown
// kind is an error; it never panics and never allocates more than a small
// multiple of len(b).
func DecodeCommand(b []byte) (*Command, error) {
	c := &Command{}
	if err := decodeCommandInto(c, b); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeCommandInto is DecodeCommand into c, reusing the storage of c's
// Compares, Then and Else: the machine decodes every entry into one
// Command, so a command costs no allocation of its own beyond its keys and
// values. On error c holds a partial command.
func decodeCommandInto(c *Command, b []byte) error {
	cmps, then, els := c.Txn.Compares, c.Txn.Then, c.Txn.Else
	*c = Command{}
	d := &decoder{b: b}
	switch d.u8() {
	case codecVersion:
	case reqVersion:
		c.Client, c.Seq = d.uvar(), d.uvar()
		if c.Client == 0 {
			return errDecode
		}
	default:
		return errDecode
	}
	if d.err != nil {
		return errDecode
	}
	c.Kind = d.u8()
	switch c.Kind {
	case CmdTxn:
		n := d.count()
		c.Txn.Compares = reuse(cmps, n)
		for i := 0; i < n && d.err == nil; i++ {
			cp := &c.Txn.Compares[i]
			cp.Target = d.u8()
			cp.Result = d.u8()
			cp.Key = d.str()
			cp.Value = d.bytes()
			cp.Int = d.svar()
			if cp.Target > TargetLease || cp.Result > CmpGreater {
				d.fail()
			}
		}
		c.Txn.Then = decodeOps(d, then)
		c.Txn.Else = decodeOps(d, els)
	case CmdCompact:
		c.Revision = d.svar()
	case CmdGrant:
		c.LeaseID = d.svar()
		c.TTL = d.svar()
	case CmdRevoke, CmdKeepAlive:
		c.LeaseID = d.svar()
	case CmdMember:
		c.Member = MemberRecord{ID: d.uvar(), Name: d.str(), Address: d.str()}
	case CmdAlarm:
		c.Alarm = d.u8()
		c.Activate = d.flag()
	case CmdHashCheck:
	case CmdHashReport:
		c.Check = d.uvar()
		c.Replica = d.uvar()
		c.Hash = d.uvar()
	case CmdExpire:
		n := d.count()
		if n > 0 {
			c.Expire = make([]ExpireItem, n)
		}
		for i := 0; i < n && d.err == nil; i++ {
			c.Expire[i] = ExpireItem{ID: d.svar(), Renew: d.uvar()}
		}
	default:
		return errDecode
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return errDecode
	}
	return nil
}

// reuse returns a slice of n zero elements, in buf's storage when it is
// large enough (nil for n == 0). It zeroes what buf used beyond n, so that
// the storage holds no stale keys or values.
func reuse[T any](buf []T, n int) []T {
	used := len(buf)
	if n == 0 {
		clear(buf)
		return nil
	}
	if cap(buf) < n {
		clear(buf)
		return make([]T, n)
	}
	out := buf[:n]
	clear(out)
	if used > n {
		clear(buf[n:used])
	}
	return out
}

// decodeOps decodes a Txn branch, in buf's storage when it is large enough.
func decodeOps(d *decoder, buf []Op) []Op {
	n := d.count()
	if d.err != nil {
		n = 0
	}
	ops := reuse(buf, n)
	for i := 0; i < n && d.err == nil; i++ {
		op := &ops[i]
		op.Kind = d.u8()
		op.Key = d.str()
		op.End = d.str()
		if op.Kind == OpPut {
			op.Value, op.Buf = d.liveValue()
		} else {
			op.Value, op.Buf = d.bytes(), nil
		}
		op.Lease = d.svar()
		op.LeaseTTL = d.svar()
		op.PrevKV = d.flag()
		r := &op.Range
		r.Limit = d.svar()
		r.Revision = d.svar()
		r.KeysOnly = d.flag()
		r.CountOnly = d.flag()
		r.SortTarget = d.u8()
		r.SortDesc = d.flag()
		r.Sorted = d.flag()
		r.MinCreate = d.svar()
		r.MaxCreate = d.svar()
		if op.Kind < OpPut || op.Kind > OpRange || r.SortTarget > SortValue {
			d.fail()
		}
	}
	return ops
}

// EncodeResult returns the wire form of r (results cross from the apply
// goroutine to the proposer as bytes; they are not replicated).
func EncodeResult(r *Result) []byte {
	e := &encoder{b: make([]byte, 0, 16)}
	e.u8(codecVersion)
	e.uvar(uint64(r.Code))
	e.svar(r.Revision)
	e.flag(r.Succeeded)
	e.svar(r.TTL)
	e.uvar(uint64(len(r.Ops)))
	for i := range r.Ops {
		o := &r.Ops[i]
		e.u8(o.Kind)
		encodeKVs(e, o.PrevKVs)
		e.svar(o.Deleted)
		encodeKVs(e, o.KVs)
		e.svar(o.Count)
		e.flag(o.More)
	}
	return e.b
}

// DecodeResult parses the output of EncodeResult.
func DecodeResult(b []byte) (*Result, error) {
	d := &decoder{b: b}
	if d.u8() != codecVersion || d.err != nil {
		return nil, errDecode
	}
	r := &Result{Code: Code(d.uvar()), Revision: d.svar(), Succeeded: d.flag(), TTL: d.svar()}
	n := d.count()
	if n > 0 {
		r.Ops = r.opsFor(n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		o := &r.Ops[i]
		o.Kind = d.u8()
		o.PrevKVs = decodeKVs(d)
		o.Deleted = d.svar()
		o.KVs = decodeKVs(d)
		o.Count = d.svar()
		o.More = d.flag()
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, errDecode
	}
	return r, nil
}

func encodeKV(e *encoder, kv *KV) {
	e.str(kv.Key)
	e.bytes(kv.Value)
	e.svar(kv.CreateRevision)
	e.svar(kv.ModRevision)
	e.svar(kv.Version)
	e.svar(kv.Lease)
}

func decodeKV(d *decoder) *KV {
	kv := &KV{Key: d.str(), Value: d.bytes()}
	kv.CreateRevision = d.svar()
	kv.ModRevision = d.svar()
	kv.Version = d.svar()
	kv.Lease = d.svar()
	return kv
}

func encodeKVs(e *encoder, kvs []*KV) {
	e.uvar(uint64(len(kvs)))
	for _, kv := range kvs {
		encodeKV(e, kv)
	}
}

func decodeKVs(d *decoder) []*KV {
	n := d.count()
	if n == 0 || d.err != nil {
		return nil
	}
	kvs := make([]*KV, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		kvs = append(kvs, decodeKV(d))
	}
	return kvs
}
