package coord

import "github.com/coordkit/coordkit/coord/internal/sm"

// Revision is a shard's logical clock: it starts at 1 and grows by one with
// every write that changes the shard. Each shard counts on its own.
type Revision int64

// LeaseID names a lease. IDs are positive; 0 means "no lease".
type LeaseID int64

// ShardAll is the Header.Shard of a response merged from several shards.
const ShardAll = -1

// Header describes the replica state a response reflects.
type Header struct {
	// Shard is the shard that served the request (0-based), or ShardAll.
	Shard int
	// Revision is the shard's revision when the request was served; for a
	// write, the revision after it.
	Revision Revision
	// RaftTerm is the shard's Raft term known to this member.
	RaftTerm uint64
	// Member is the name of the member that served the request.
	Member string
}

// KeyValue is one version of a key.
type KeyValue struct {
	Key            string
	Value          []byte
	CreateRevision Revision // revision of the put that created the key
	ModRevision    Revision // revision of the last put
	Version        int64    // puts since creation, 1 for a new key
	Lease          LeaseID  // 0: not attached to a lease
}

// EventType says what an Event did.
type EventType int

// Event types.
const (
	EventPut EventType = iota
	EventDelete
)

func (t EventType) String() string {
	if t == EventDelete {
		return "DELETE"
	}
	return "PUT"
}

// Event is one change to one key.
type Event struct {
	Type EventType
	// KV is the new version; for a delete, only Key and ModRevision (the
	// delete's revision) are set.
	KV *KeyValue
	// PrevKV is the version before the change, when WithPrevKV was given and
	// the previous version was still in history.
	PrevKV *KeyValue
}

func fromKV(kv *sm.KV) *KeyValue {
	if kv == nil {
		return nil
	}
	return &KeyValue{
		Key: kv.Key, Value: kv.Value, CreateRevision: Revision(kv.CreateRevision),
		ModRevision: Revision(kv.ModRevision), Version: kv.Version, Lease: LeaseID(kv.Lease),
	}
}

func fromKVs(kvs []*sm.KV) []*KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]*KeyValue, len(kvs))
	for i, kv := range kvs {
		out[i] = fromKV(kv)
	}
	return out
}

// PutResponse is the result of Put.
type PutResponse struct {
	Header Header
	PrevKV *KeyValue // with WithPrevKV, the value replaced, if any
}

// GetResponse is the result of Get.
type GetResponse struct {
	Header Header
	KVs    []*KeyValue
	// More is true when WithLimit cut the result short.
	More bool
	// Count is the number of keys in the range, regardless of the limit.
	Count int64
	// Shards holds the header of every shard a range spanning shards read
	// (Header.Shard is then ShardAll); nil for a one-shard range.
	Shards []Header
}

// DeleteResponse is the result of Delete.
type DeleteResponse struct {
	Header  Header
	Deleted int64
	PrevKVs []*KeyValue // with WithPrevKV
	Shards  []Header    // as in GetResponse
}

// ListEntry is one immediate child of a directory.
type ListEntry struct {
	// Name is the child's full key; a directory's name ends in "/".
	Name string
	// Dir is true for a directory: a prefix under which keys exist.
	Dir bool
	// KV is the key's value; nil for a directory.
	KV *KeyValue
}

// ListResponse is the result of List.
type ListResponse struct {
	Header  Header
	Entries []ListEntry
	Shards  []Header // as in GetResponse
}

// CompactResponse is the result of Compact.
type CompactResponse struct {
	Header Header
}
