package sm

import "encoding/binary"

// live is a key's live version as the current-key tree holds it: the key,
// and one buffer holding the version's revisions, version and lease (fixed
// width, liveHeader bytes) followed by its value. An item is 40 bytes
// where a KV is 72: a B-tree insert moves and copies items, and its search
// passes them to the comparison by value: with the smaller item an insert
// took a quarter to a third less time (a benchmark of the tree alone,
// 256,000 keys). And a put
// writes the CreateRevision and Version it learns from the version it
// replaces into its own buffer after the one search that replaced it:
// nothing else can see the buffer before the batch ends (views are taken
// between batches), so an overwrite no longer searches twice.
type live struct {
	Key string
	b   []byte // header, then the value; never changed once the batch that wrote it ends
}

// liveHeader is the fixed-width part of live.b: CreateRevision,
// ModRevision, Version, Lease.
const liveHeader = 32

func liveLess(a, b live) bool { return a.Key < b.Key }

// liveKey is an item to search the tree for key with.
func liveKey(key string) live { return live{Key: key} }

// newLiveBuf returns a buffer for a live version whose value is value.
func newLiveBuf(value []byte) []byte {
	b := make([]byte, liveHeader+len(value))
	copy(b[liveHeader:], value)
	return b
}

// setHeader writes kv's fields but Key and Value into l's buffer.
func (l *live) setHeader(kv *KV) {
	binary.LittleEndian.PutUint64(l.b[0:], uint64(kv.CreateRevision))
	binary.LittleEndian.PutUint64(l.b[8:], uint64(kv.ModRevision))
	binary.LittleEndian.PutUint64(l.b[16:], uint64(kv.Version))
	binary.LittleEndian.PutUint64(l.b[24:], uint64(kv.Lease))
}

// kv returns the version l holds. Its Value shares l's buffer (nil when
// empty, as decoded values are): the store never writes it.
func (l *live) kv() KV {
	kv := KV{Key: l.Key,
		CreateRevision: int64(binary.LittleEndian.Uint64(l.b[0:])),
		ModRevision:    int64(binary.LittleEndian.Uint64(l.b[8:])),
		Version:        int64(binary.LittleEndian.Uint64(l.b[16:])),
		Lease:          int64(binary.LittleEndian.Uint64(l.b[24:]))}
	if len(l.b) > liveHeader {
		kv.Value = l.b[liveHeader:len(l.b):len(l.b)]
	}
	return kv
}

// modRevision is l's ModRevision, read without decoding the rest.
func (l *live) modRevision() int64 { return int64(binary.LittleEndian.Uint64(l.b[8:])) }

// liveOf is kv as the tree holds it, in a buffer of its own.
func liveOf(kv *KV) live {
	l := live{Key: kv.Key, b: newLiveBuf(kv.Value)}
	l.setHeader(kv)
	return l
}
