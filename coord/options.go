package coord

import (
	"fmt"
	"time"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

type opKind uint16

const (
	kindGet opKind = 1 << iota
	kindPut
	kindDelete
	kindWatch
	kindList
	kindTTL
	kindSnapshot
)

// op collects what the options of one call asked for.
type op struct {
	kind         opKind
	err          error
	end          string // range end; "" single key, "\x00" no upper bound
	prefix       bool
	fromKey      bool
	lease        LeaseID
	prevKV       bool
	rev          Revision
	serializable bool
	limit        int64
	keysOnly     bool
	countOnly    bool
	sortTarget   SortTarget
	sortOrder    SortOrder
	sorted       bool
	filterPut    bool
	filterDelete bool
	progress     time.Duration
	attachedKeys bool
	minCreate    Revision
	maxCreate    Revision
}

// OpOption modifies a call. An option given to a call it does not apply to
// makes the call fail with ErrInvalidOption, naming the option.
type OpOption func(*op)

func (o *op) allow(name string, kinds opKind) bool {
	if o.kind&kinds == 0 {
		if o.err == nil {
			o.err = fmt.Errorf("%w: %s does not apply to this call", ErrInvalidOption, name)
		}
		return false
	}
	return true
}

func (o *op) bad(format string, args ...any) {
	if o.err == nil {
		o.err = fmt.Errorf("%w: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
	}
}

func buildOp(kind opKind, opts []OpOption) (*op, error) {
	o := &op{kind: kind}
	for _, f := range opts {
		if f != nil {
			f(o)
		}
	}
	if o.err != nil {
		return nil, o.err
	}
	n := 0
	for _, b := range []bool{o.prefix, o.fromKey, o.end != ""} {
		if b {
			n++
		}
	}
	if n > 1 {
		return nil, fmt.Errorf("%w: WithPrefix, WithFromKey and WithRange exclude each other", ErrInvalidOption)
	}
	return o, nil
}

// WithPrefix makes Get, Delete and Watch act on every key starting with the
// given key. Applies to Get, Delete, Watch.
func WithPrefix() OpOption {
	return func(o *op) {
		if o.allow("WithPrefix", kindGet|kindDelete|kindWatch) {
			o.prefix = true
		}
	}
}

// WithFromKey makes the call act on every key >= the given key.
// Applies to Get, Delete, Watch.
func WithFromKey() OpOption {
	return func(o *op) {
		if o.allow("WithFromKey", kindGet|kindDelete|kindWatch) {
			o.fromKey = true
		}
	}
}

// WithRange makes the call act on keys in [key, end). Applies to Get,
// Delete, Watch.
func WithRange(end string) OpOption {
	return func(o *op) {
		if !o.allow("WithRange", kindGet|kindDelete|kindWatch) {
			return
		}
		if end == "" {
			o.bad("WithRange: empty end")
			return
		}
		o.end = end
	}
}

// WithLease attaches the key to a lease: the key is deleted when the lease
// ends. Applies to Put.
func WithLease(id LeaseID) OpOption {
	return func(o *op) {
		if !o.allow("WithLease", kindPut) {
			return
		}
		if id <= 0 {
			o.bad("WithLease: lease ID %d is not positive", id)
			return
		}
		o.lease = id
	}
}

// WithPrevKV returns the previous version of the key(s): in PutResponse,
// DeleteResponse and in watch events. Applies to Put, Delete, Watch.
func WithPrevKV() OpOption {
	return func(o *op) {
		if o.allow("WithPrevKV", kindPut|kindDelete|kindWatch) {
			o.prevKV = true
		}
	}
}

// WithRev reads at a past revision (Get), or starts a Watch at a revision
// (events at rev and after are delivered). Applies to Get, Watch.
func WithRev(rev Revision) OpOption {
	return func(o *op) {
		if !o.allow("WithRev", kindGet|kindWatch) {
			return
		}
		if rev < 0 {
			o.bad("WithRev: negative revision %d", rev)
			return
		}
		o.rev = rev
	}
}

// WithSerializable serves the read from this member's replica without
// contacting the leader: no network at all, possibly stale (it reflects
// every write this replica has applied, in order). Applies to Get, List,
// Snapshot.
func WithSerializable() OpOption {
	return func(o *op) {
		if o.allow("WithSerializable", kindGet|kindList|kindSnapshot) {
			o.serializable = true
		}
	}
}

// WithLimit returns at most n keys; GetResponse.More says whether more
// matched. Applies to Get.
func WithLimit(n int64) OpOption {
	return func(o *op) {
		if !o.allow("WithLimit", kindGet) {
			return
		}
		if n < 0 {
			o.bad("WithLimit: negative limit %d", n)
			return
		}
		o.limit = n
	}
}

// WithKeysOnly returns keys without values. Applies to Get.
func WithKeysOnly() OpOption {
	return func(o *op) {
		if o.allow("WithKeysOnly", kindGet) {
			o.keysOnly = true
		}
	}
}

// WithCountOnly returns only GetResponse.Count. Applies to Get.
func WithCountOnly() OpOption {
	return func(o *op) {
		if o.allow("WithCountOnly", kindGet) {
			o.countOnly = true
		}
	}
}

// WithMinCreateRev keeps only keys created at revision rev or later.
// Applies to Get (and OpGet).
func WithMinCreateRev(rev Revision) OpOption {
	return func(o *op) {
		if !o.allow("WithMinCreateRev", kindGet) {
			return
		}
		if rev <= 0 {
			o.bad("WithMinCreateRev: revision %d is not positive", rev)
			return
		}
		o.minCreate = rev
	}
}

// WithMaxCreateRev keeps only keys created at revision rev or earlier: with
// WithSort(SortByCreateRevision, SortDescend) and WithLimit(1) it finds the
// key created just before another, the building block of fair queues.
// Applies to Get (and OpGet).
func WithMaxCreateRev(rev Revision) OpOption {
	return func(o *op) {
		if !o.allow("WithMaxCreateRev", kindGet) {
			return
		}
		if rev <= 0 {
			o.bad("WithMaxCreateRev: revision %d is not positive", rev)
			return
		}
		o.maxCreate = rev
	}
}

// SortTarget is what WithSort orders by.
type SortTarget int

// Sort targets.
const (
	SortByKey SortTarget = iota
	SortByVersion
	SortByCreateRevision
	SortByModRevision
	SortByValue
)

// SortOrder is the direction of WithSort.
type SortOrder int

// Sort orders.
const (
	SortAscend SortOrder = iota
	SortDescend
)

// WithSort orders a Get's result (default: by key, ascending). Ties are
// broken by key. Applies to Get.
func WithSort(target SortTarget, order SortOrder) OpOption {
	return func(o *op) {
		if !o.allow("WithSort", kindGet) {
			return
		}
		if target < SortByKey || target > SortByValue || order < SortAscend || order > SortDescend {
			o.bad("WithSort: unknown target or order")
			return
		}
		o.sortTarget, o.sortOrder, o.sorted = target, order, true
	}
}

// WithFilterPut drops put events from a Watch. Applies to Watch.
func WithFilterPut() OpOption {
	return func(o *op) {
		if o.allow("WithFilterPut", kindWatch) {
			o.filterPut = true
		}
	}
}

// WithFilterDelete drops delete events from a Watch. Applies to Watch.
func WithFilterDelete() OpOption {
	return func(o *op) {
		if o.allow("WithFilterDelete", kindWatch) {
			o.filterDelete = true
		}
	}
}

// WithProgressNotify makes a Watch send an event-less WatchResponse after
// every interval without events; its Header.Revision promises that every
// event up to that revision has been delivered. Applies to Watch.
func WithProgressNotify(interval time.Duration) OpOption {
	return func(o *op) {
		if !o.allow("WithProgressNotify", kindWatch) {
			return
		}
		if interval <= 0 {
			o.bad("WithProgressNotify: interval must be positive")
			return
		}
		o.progress = interval
	}
}

// WithAttachedKeys makes TimeToLive list the keys attached to the lease.
// Applies to TimeToLive.
func WithAttachedKeys() OpOption {
	return func(o *op) {
		if o.allow("WithAttachedKeys", kindTTL) {
			o.attachedKeys = true
		}
	}
}

// prefixEnd returns the end of the range of keys starting with p; "\x00"
// means no upper bound (p is empty or all 0xff).
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00"
}

// rangeEnd resolves the options into the end of [key, end).
func (o *op) rangeEnd(key string) string {
	switch {
	case o.prefix:
		return prefixEnd(key)
	case o.fromKey:
		return "\x00"
	}
	return o.end
}

// rangeOpts is what the options of a Get ask of the state machine's range
// read (the one mapping, for Get and a Txn's OpGet alike).
func (o *op) rangeOpts() sm.RangeOpts {
	return sm.RangeOpts{Limit: o.limit, Revision: int64(o.rev), KeysOnly: o.keysOnly, CountOnly: o.countOnly,
		SortTarget: uint8(o.sortTarget), SortDesc: o.sortOrder == SortDescend,
		Sorted:    o.sorted && !(o.sortTarget == SortByKey && o.sortOrder == SortAscend),
		MinCreate: int64(o.minCreate), MaxCreate: int64(o.maxCreate)}
}
