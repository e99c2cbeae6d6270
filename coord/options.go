package coord

import (
	"time"

	"github.com/coordkit/coordkit/coord/internal/request"
)

// OpOption modifies a call. An option given to a call it does not apply to
// makes the call fail with ErrInvalidOption, naming the option.
type OpOption func(*request.Options)

// WithPrefix makes Get, Delete and Watch act on every key starting with the
// given key. Applies to Get, Delete, Watch.
func WithPrefix() OpOption {
	return func(o *request.Options) {
		if o.Allow("WithPrefix", request.Get|request.Delete|request.Watch) {
			o.Prefix = true
		}
	}
}

// WithFromKey makes the call act on every key >= the given key.
// Applies to Get, Delete, Watch.
func WithFromKey() OpOption {
	return func(o *request.Options) {
		if o.Allow("WithFromKey", request.Get|request.Delete|request.Watch) {
			o.FromKey = true
		}
	}
}

// WithRange makes the call act on keys in [key, end). Applies to Get,
// Delete, Watch.
func WithRange(end string) OpOption {
	return func(o *request.Options) {
		if !o.Allow("WithRange", request.Get|request.Delete|request.Watch) {
			return
		}
		if end == "" {
			o.Bad("WithRange: empty end")
			return
		}
		o.End = end
	}
}

// WithLease attaches the key to a lease: the key is deleted when the lease
// ends. Applies to Put.
func WithLease(id LeaseID) OpOption {
	return func(o *request.Options) {
		if !o.Allow("WithLease", request.Put) {
			return
		}
		if id <= 0 {
			o.Bad("WithLease: lease ID %d is not positive", id)
			return
		}
		o.Lease = int64(id)
	}
}

// WithPrevKV returns the previous version of the key(s): in PutResponse,
// DeleteResponse and in watch events. Applies to Put, Delete, Watch.
func WithPrevKV() OpOption {
	return func(o *request.Options) {
		if o.Allow("WithPrevKV", request.Put|request.Delete|request.Watch) {
			o.PrevKV = true
		}
	}
}

// WithRev reads at a past revision (Get), or starts a Watch at a revision
// (events at rev and after are delivered). Applies to Get, Watch.
func WithRev(rev Revision) OpOption {
	return func(o *request.Options) {
		if !o.Allow("WithRev", request.Get|request.Watch) {
			return
		}
		if rev < 0 {
			o.Bad("WithRev: negative revision %d", rev)
			return
		}
		o.Rev = int64(rev)
	}
}

// WithSerializable serves the read from this member's replica without
// contacting the leader: no network at all, possibly stale (it reflects
// every write this replica has applied, in order). Applies to Get, List,
// Snapshot.
func WithSerializable() OpOption {
	return func(o *request.Options) {
		if o.Allow("WithSerializable", request.Get|request.List|request.Snapshot) {
			o.Serializable = true
		}
	}
}

// WithLimit returns at most n keys; GetResponse.More says whether more
// matched. Applies to Get.
func WithLimit(n int64) OpOption {
	return func(o *request.Options) {
		if !o.Allow("WithLimit", request.Get) {
			return
		}
		if n < 0 {
			o.Bad("WithLimit: negative limit %d", n)
			return
		}
		o.Limit = n
	}
}

// WithKeysOnly returns keys without values. Applies to Get.
func WithKeysOnly() OpOption {
	return func(o *request.Options) {
		if o.Allow("WithKeysOnly", request.Get) {
			o.KeysOnly = true
		}
	}
}

// WithCountOnly returns only GetResponse.Count. Applies to Get.
func WithCountOnly() OpOption {
	return func(o *request.Options) {
		if o.Allow("WithCountOnly", request.Get) {
			o.CountOnly = true
		}
	}
}

// WithMinCreateRev keeps only keys created at revision rev or later.
// Applies to Get (and OpGet).
func WithMinCreateRev(rev Revision) OpOption {
	return func(o *request.Options) {
		if !o.Allow("WithMinCreateRev", request.Get) {
			return
		}
		if rev <= 0 {
			o.Bad("WithMinCreateRev: revision %d is not positive", rev)
			return
		}
		o.MinCreate = int64(rev)
	}
}

// WithMaxCreateRev keeps only keys created at revision rev or earlier: with
// WithSort(SortByCreateRevision, SortDescend) and WithLimit(1) it finds the
// key created just before another, the building block of fair queues.
// Applies to Get (and OpGet).
func WithMaxCreateRev(rev Revision) OpOption {
	return func(o *request.Options) {
		if !o.Allow("WithMaxCreateRev", request.Get) {
			return
		}
		if rev <= 0 {
			o.Bad("WithMaxCreateRev: revision %d is not positive", rev)
			return
		}
		o.MaxCreate = int64(rev)
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
	return func(o *request.Options) {
		if !o.Allow("WithSort", request.Get) {
			return
		}
		if target < SortByKey || target > SortByValue || order < SortAscend || order > SortDescend {
			o.Bad("WithSort: unknown target or order")
			return
		}
		o.SortTarget, o.SortDesc, o.Sorted = uint8(target), order == SortDescend, true
	}
}

// WithFilterPut drops put events from a Watch. Applies to Watch.
func WithFilterPut() OpOption {
	return func(o *request.Options) {
		if o.Allow("WithFilterPut", request.Watch) {
			o.FilterPut = true
		}
	}
}

// WithFilterDelete drops delete events from a Watch. Applies to Watch.
func WithFilterDelete() OpOption {
	return func(o *request.Options) {
		if o.Allow("WithFilterDelete", request.Watch) {
			o.FilterDelete = true
		}
	}
}

// WithProgressNotify makes a Watch send an event-less WatchResponse after
// every interval without events; its Header.Revision promises that every
// event up to that revision has been delivered. Applies to Watch.
func WithProgressNotify(interval time.Duration) OpOption {
	return func(o *request.Options) {
		if !o.Allow("WithProgressNotify", request.Watch) {
			return
		}
		if interval <= 0 {
			o.Bad("WithProgressNotify: interval must be positive")
			return
		}
		o.Progress = interval
	}
}

// WithAttachedKeys makes TimeToLive list the keys attached to the lease.
// Applies to TimeToLive.
func WithAttachedKeys() OpOption {
	return func(o *request.Options) {
		if o.Allow("WithAttachedKeys", request.TTL) {
			o.AttachedKeys = true
		}
	}
}
