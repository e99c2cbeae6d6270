// Package sm is coordkit's replicated state machine: an in-memory MVCC
// key-value store with leases, one instance per shard and replica.
//
// Determinism rules (every replica must reach the same state from the same
// log): Apply reads nothing but its command and the current state; no clocks,
// no randomness, no map iteration order, no I/O. Logical outcomes (a failed
// compare, an unknown lease, a compacted revision) are results, never errors:
// an error returned from Update stops the replica. Commands that cannot be
// decoded are answered with a result code and change nothing.
//
// Concurrency: one goroutine applies (dragonboat's contract). Readers,
// watchers and snapshots use immutable Views (copy-on-write btree clones,
// O(1)) without locks, so a slow reader or a large snapshot never stops
// apply. A View is taken on demand, at most once per applied batch: after a
// clone every write copies the nodes it touches, so cloning after every
// batch would make writes pay for views nobody reads.
//
// Requests that carry an ID (Command.Client, Seq) are applied at most once:
// the shard remembers each client's latest applied request and its result
// (replicated, and in snapshots), so a proposer may propose a request again
// when an attempt timed out.
package sm

// KV is one version of a key. Values are never mutated once stored.
type KV struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
	Version        int64
	Lease          int64
}

// Event is one change at one revision.
type Event struct {
	Delete bool
	KV     *KV // for a delete: Key and ModRevision (the delete's revision) only
	PrevKV *KV // nil when the key did not exist or its history was compacted
}

// Code is the outcome of a command, carried in the Raft result's Value.
type Code uint64

// Result codes. CodeOK is the only one that may have changed state.
const (
	CodeOK Code = iota
	CodeBadCommand
	CodeLeaseNotFound
	CodeCompacted
	CodeFutureRevision
	CodeLeaseExists
	CodeDuplicateKey
	// CodeStale: a request that a later request of the same client
	// overtook; it was not applied (its proposer has given up on it).
	CodeStale
	// CodeResultLost: a retry of a request applied earlier whose result was
	// too large to keep for retries. The request was applied once.
	CodeResultLost
	// CodeNoSpace: the shard's NOSPACE alarm is raised, and the command
	// would grow the store (a Txn with a put, a grant).
	CodeNoSpace
	// CodeCorrupt: the shard's CORRUPT alarm is raised (its replicas'
	// states differ), and the command would change the store.
	CodeCorrupt
)

// Alarms (Command.Alarm).
const (
	// AlarmNoSpace: the store reached its quota; see CodeNoSpace.
	AlarmNoSpace uint8 = 1
	// AlarmCorrupt: an integrity check found replicas whose states differ;
	// see CodeCorrupt. Only reports raise it (CmdHashReport); CmdAlarm
	// clears it.
	AlarmCorrupt uint8 = 2
)

// Compare targets and results, the same set etcd's Txn offers.
const (
	TargetValue uint8 = iota
	TargetVersion
	TargetCreate
	TargetMod
	TargetLease
)

// Compare results.
const (
	CmpEqual uint8 = iota
	CmpNotEqual
	CmpLess
	CmpGreater
)

// Op kinds.
const (
	OpPut uint8 = iota + 1
	OpDelete
	OpRange
)

// Sort targets and orders for Range.
const (
	SortKey uint8 = iota
	SortVersion
	SortCreate
	SortMod
	SortValue
)

// Compare is one condition of a Txn.
type Compare struct {
	Target uint8
	Result uint8
	Key    string
	Value  []byte
	Int    int64 // version, revision or lease, per Target
}

// RangeOpts shapes a Range.
type RangeOpts struct {
	Limit      int64
	Revision   int64
	KeysOnly   bool
	CountOnly  bool
	SortTarget uint8
	SortDesc   bool
	Sorted     bool // false: key order ascending, no sort pass
	// MinCreate and MaxCreate keep only keys whose CreateRevision is in
	// [MinCreate, MaxCreate]; 0 means no bound.
	MinCreate int64
	MaxCreate int64
}

// Op is one operation of a Txn. End is the exclusive end of a range; an empty
// End means the single key Key.
type Op struct {
	Kind     uint8
	Key      string
	End      string
	Value    []byte
	Lease    int64
	LeaseTTL int64 // ms; >0 lets a Put create the lease here if absent (lease homed in another shard)
	PrevKV   bool
	Range    RangeOpts
	// Buf, for a decoded put, is liveHeader bytes of room followed by
	// Value, which it holds: the store keeps the buffer as the live
	// version's (see live). Encoding ignores it.
	Buf []byte
}

// Txn is the one write command for keys: Put and Delete are Txns with no compares.
type Txn struct {
	Compares []Compare
	Then     []Op
	Else     []Op
}

// ExpireItem names a lease to expire if it has not been renewed since Renew.
type ExpireItem struct {
	ID    int64
	Renew uint64
}

// Command kinds.
const (
	CmdTxn uint8 = iota + 1
	CmdCompact
	CmdGrant
	CmdRevoke
	CmdKeepAlive
	CmdExpire
	CmdMember
	// CmdAlarm raises (Activate) or clears an alarm.
	CmdAlarm
	// CmdHashCheck starts an integrity check: every replica that applies
	// it hashes its state as of that entry (Listener.HashCheck) and
	// proposes the hash in a CmdHashReport.
	CmdHashCheck
	// CmdHashReport is one replica's hash for the check at Raft index
	// Check; a hash that differs from others raises the CORRUPT alarm.
	CmdHashReport
)

// Command is the decoded form of one Raft entry.
type Command struct {
	// Client and Seq identify the request for deduplication (0: none). A
	// client proposes one request at a time with increasing Seq and may
	// propose the same request again when it cannot tell whether it was
	// applied: the machine applies it at most once and answers a retry with
	// the first result.
	Client   uint64
	Seq      uint64
	Kind     uint8
	Txn      Txn
	Revision int64 // CmdCompact
	LeaseID  int64 // CmdGrant, CmdRevoke, CmdKeepAlive
	TTL      int64 // CmdGrant, ms
	Expire   []ExpireItem
	Member   MemberRecord // CmdMember
	Alarm    uint8        // CmdAlarm
	Activate bool         // CmdAlarm
	Check    uint64       // CmdHashReport: the check's Raft index
	Replica  uint64       // CmdHashReport: the reporting replica's ID
	Hash     uint64       // CmdHashReport
	// One is room for a Txn of one op (Txn.Then = One[:]), so that a
	// proposer builds the commonest command, a put, in one allocation.
	One [1]Op
}

// MemberRecord names a member that joined after the cluster was founded
// (founders are named by every member's InitialCluster).
type MemberRecord struct {
	ID      uint64
	Name    string
	Address string
}

// OpResult is the outcome of one Op.
type OpResult struct {
	Kind    uint8
	PrevKVs []*KV // put: the previous value (0 or 1); delete: deleted keys when PrevKV
	Deleted int64
	KVs     []*KV // range
	Count   int64
	More    bool
}

// Result is the outcome of a command.
type Result struct {
	Code      Code
	Revision  int64 // the store's revision after the command
	Succeeded bool  // Txn: whether Then ran
	Ops       []OpResult
	TTL       int64 // grant, keep-alive: the lease's TTL in ms
	// one holds Ops for a command of one op, the commonest, so that a
	// Result takes one allocation, not two.
	one [1]OpResult
}

// opsFor returns Ops for n ops of r, a new Result: r.one for one.
func (r *Result) opsFor(n int) []OpResult {
	if n == 1 {
		return r.one[:]
	}
	return make([]OpResult, n)
}
