package sm

import "strings"

// Range runs a range op against the view.
func (v *View) Range(op *Op) (OpResult, Code) { return v.st.rangeOp(op) }

// Lease returns a lease's TTL (ms) and whether the shard holds it.
func (v *View) Lease(id int64) (LeaseInfo, bool) {
	l, ok := v.st.leases.Get(lease{id: id})
	return LeaseInfo{ID: l.id, TTL: l.ttl, Renew: l.renew}, ok
}

// Leases lists the shard's leases in ID order.
func (v *View) Leases() []LeaseInfo {
	out := make([]LeaseInfo, 0, v.st.leases.Len())
	v.st.leases.Ascend(func(l lease) bool {
		out = append(out, LeaseInfo{ID: l.id, TTL: l.ttl, Renew: l.renew})
		return true
	})
	return out
}

// LeaseKeys lists the keys attached to a lease in this shard, in key order.
func (v *View) LeaseKeys(id int64) []string {
	var keys []string
	v.st.attached.AscendGreaterOrEqual(attach{lease: id}, func(a attach) bool {
		if a.lease != id {
			return false
		}
		keys = append(keys, a.key)
		return true
	})
	return keys
}

// ListEntry is one immediate child of a directory.
type ListEntry struct {
	Name string // the child's full name; directories end in "/"
	Dir  bool
	KV   *KV // for a key; nil for a directory
}

// List returns the immediate children of dir (which ends in "/"), like ls:
// keys directly in dir, and each subdirectory once.
func (v *View) List(dir string) []ListEntry {
	var out []ListEntry
	from := dir
	for {
		var next string
		v.st.cur.AscendGreaterOrEqual(liveKey(from), func(l live) bool {
			if !strings.HasPrefix(l.Key, dir) {
				return false
			}
			rest := l.Key[len(dir):]
			if rest == "" {
				return true // the key named like the directory is not its child
			}
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				sub := dir + rest[:i+1]
				out = append(out, ListEntry{Name: sub, Dir: true})
				next = dir + rest[:i] + "0" // '0' sorts right after '/'
				return false
			}
			kv := l.kv()
			out = append(out, ListEntry{Name: kv.Key, KV: &kv})
			return true
		})
		if next == "" {
			return out
		}
		from = next
	}
}

// Events returns the events of revisions [from, to] for keys in [key, end)
// (end "" means key only, "\x00" means no upper bound), in revision order.
// It stops after the revision in which it passes max events (a revision is
// never split) and returns the last revision it covered. from must be >= the
// view's compaction revision.
func (v *View) Events(from, to int64, key, end string, max int) ([]Event, int64) {
	var evs []Event
	last := from - 1
	v.st.byRev.AscendGreaterOrEqual(revKey{rev: from}, func(k revKey) bool {
		if k.rev > to {
			return false
		}
		if k.rev != last && len(evs) >= max {
			return false
		}
		last = k.rev
		if !inRange(k.key, key, end) {
			return true
		}
		evs = append(evs, v.event(k))
		return true
	})
	if last < to && (len(evs) < max) {
		last = to
	}
	return evs, last
}

func (v *View) event(k revKey) Event {
	var ev Event
	if kv, ok := v.st.get(k.key); ok && kv.ModRevision == k.rev {
		ev = Event{KV: &kv}
	} else if r, ok := v.st.hist.Get(histKey(k.key, k.rev)); !ok {
		return ev // cannot happen: byRev names only versions that exist
	} else if !r.tomb() {
		ev = Event{KV: r.version()}
	} else {
		ev = Event{Delete: true, KV: &KV{Key: k.key, ModRevision: k.rev}}
	}
	// The version before is the key's newest past version older than k.rev.
	v.st.hist.AscendGreaterOrEqual(histKey(k.key, k.rev-1), func(r rec) bool {
		if r.Key == k.key && !r.tomb() {
			ev.PrevKV = r.version()
		}
		return false
	})
	return ev
}

// Members lists the member records (members that joined after founding).
func (v *View) Members() []MemberRecord {
	var out []MemberRecord
	v.st.members.Ascend(func(m MemberRecord) bool {
		out = append(out, m)
		return true
	})
	return out
}
