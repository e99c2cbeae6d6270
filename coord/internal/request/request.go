// Package request turns the calls of package coord's data API into what
// the state machine executes: it collects a call's options (Options, set
// by coord's OpOption functions), checks keys, values and limits, routes
// keys to shards, and builds a transaction's command. Every error it
// returns wraps one of coord's sentinels (coord/internal/errdefs); nothing
// here blocks or touches the network.
package request

import (
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

// Kind is the call an option is given to; an option names the kinds it
// applies to.
type Kind uint16

// The calls that take options.
const (
	Get Kind = 1 << iota
	Put
	Delete
	Watch
	List
	TTL
	Snapshot
)

// Options are what the options of one call asked for.
type Options struct {
	Kind         Kind
	Err          error  // the first bad option
	End          string // range end; "" single key, "\x00" no upper bound
	Prefix       bool
	FromKey      bool
	Lease        int64
	PrevKV       bool
	Rev          int64
	Serializable bool
	Limit        int64
	KeysOnly     bool
	CountOnly    bool
	SortTarget   uint8 // sm.SortKey ...
	SortDesc     bool
	Sorted       bool
	FilterPut    bool
	FilterDelete bool
	Progress     time.Duration
	AttachedKeys bool
	MinCreate    int64
	MaxCreate    int64
}

// Allow reports whether the option name applies to the call; when it does
// not, the call fails with ErrInvalidOption naming it.
func (o *Options) Allow(name string, kinds Kind) bool {
	if o.Kind&kinds == 0 {
		if o.Err == nil {
			o.Err = fmt.Errorf("%w: %s does not apply to this call", errdefs.ErrInvalidOption, name)
		}
		return false
	}
	return true
}

// Bad makes the call fail with ErrInvalidOption, saying why.
func (o *Options) Bad(format string, args ...any) {
	if o.Err == nil {
		o.Err = fmt.Errorf("%w: %s", errdefs.ErrInvalidOption, fmt.Sprintf(format, args...))
	}
}

// Build applies opts, a call's options, to the Options of a call of kind.
// Errors: the first bad option's, or ErrInvalidOption when more than one
// of the range options is given.
func Build[F ~func(*Options)](kind Kind, opts []F) (*Options, error) {
	o := &Options{Kind: kind}
	for _, f := range opts {
		if f != nil {
			f(o)
		}
	}
	if o.Err != nil {
		return nil, o.Err
	}
	n := 0
	for _, b := range []bool{o.Prefix, o.FromKey, o.End != ""} {
		if b {
			n++
		}
	}
	if n > 1 {
		return nil, fmt.Errorf("%w: WithPrefix, WithFromKey and WithRange exclude each other", errdefs.ErrInvalidOption)
	}
	return o, nil
}

// PrefixEnd returns the end of the range of keys starting with p; "\x00"
// means no upper bound (p is empty or all 0xff).
func PrefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00"
}

// RangeEnd resolves the options into the end of [key, end).
func (o *Options) RangeEnd(key string) string {
	switch {
	case o.Prefix:
		return PrefixEnd(key)
	case o.FromKey:
		return "\x00"
	}
	return o.End
}

// RangeOpts is what the options of a Get ask of the state machine's range
// read (the one mapping, for Get and a Txn's OpGet alike).
func (o *Options) RangeOpts() sm.RangeOpts {
	return sm.RangeOpts{Limit: o.Limit, Revision: o.Rev, KeysOnly: o.KeysOnly, CountOnly: o.CountOnly,
		SortTarget: o.SortTarget, SortDesc: o.SortDesc,
		Sorted:    o.Sorted && !(o.SortTarget == sm.SortKey && !o.SortDesc),
		MinCreate: o.MinCreate, MaxCreate: o.MaxCreate}
}

// Limits are the Config's bounds on one request.
type Limits struct {
	MaxKeyBytes, MaxValueBytes, MaxTxnOps int
}

// CheckKey checks a key: ErrEmptyKey, ErrKeyTooLarge.
func (l Limits) CheckKey(key string) error {
	if key == "" {
		return errdefs.ErrEmptyKey
	}
	if len(key) > l.MaxKeyBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", errdefs.ErrKeyTooLarge, len(key), l.MaxKeyBytes)
	}
	return nil
}

// CheckValue checks a value: ErrValueTooLarge.
func (l Limits) CheckValue(v []byte) error {
	if len(v) > l.MaxValueBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", errdefs.ErrValueTooLarge, len(v), l.MaxValueBytes)
	}
	return nil
}

// CheckRange checks the key of a call that may take a range: an empty key
// is allowed with WithPrefix or WithFromKey (every key). Errors:
// ErrEmptyKey, ErrKeyTooLarge, ErrInvalidOption for a range end not after
// key.
func (l Limits) CheckRange(key string, o *Options) error {
	if key == "" && !(o.Prefix || o.FromKey) {
		return errdefs.ErrEmptyKey
	}
	if len(key) > l.MaxKeyBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", errdefs.ErrKeyTooLarge, len(key), l.MaxKeyBytes)
	}
	if o.End != "" && o.End <= key {
		return fmt.Errorf("%w: WithRange end %q is not after key %q", errdefs.ErrInvalidOption, o.End, key)
	}
	return nil
}

// Router routes keys to a cluster's Shards: keys with the same first path
// segment ("/orders/a" and "/orders/b": "orders") always share a shard.
type Router struct{ Shards int }

// ShardOf returns the shard that holds key.
func (r Router) ShardOf(key string) int {
	if r.Shards == 1 {
		return 0
	}
	k := strings.TrimPrefix(key, "/")
	if i := strings.IndexByte(k, '/'); i >= 0 {
		k = k[:i]
	}
	h := fnv.New32a()
	h.Write([]byte(k))
	return int(h.Sum32() % uint32(r.Shards))
}

// RangeShard returns the one shard holding every key of [key, end), or -1
// when the range may span shards.
func (r Router) RangeShard(key, end string) int {
	if r.Shards == 1 || end == "" {
		return r.ShardOf(key)
	}
	// A range inside one directory "/seg/" (or "seg/") stays in one shard.
	k := strings.TrimPrefix(key, "/")
	i := strings.IndexByte(k, '/')
	if i < 0 {
		return -1
	}
	dir := key[:len(key)-len(k)+i+1]
	if end != "\x00" && end <= PrefixEnd(dir) && strings.HasPrefix(key, dir) {
		return r.ShardOf(key)
	}
	return -1
}
