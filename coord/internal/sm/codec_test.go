package sm_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/sm"
)

// sampleCommands has at least one command of every kind, with every field of
// every kind set to something non-zero somewhere.
func sampleCommands() []*sm.Command {
	return []*sm.Command{
		{Kind: sm.CmdTxn},
		{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{putOp("k", "v")}}},
		{Kind: sm.CmdTxn, Txn: sm.Txn{
			Compares: []sm.Compare{
				{Target: sm.TargetValue, Result: sm.CmpEqual, Key: "a", Value: []byte("x")},
				{Target: sm.TargetVersion, Result: sm.CmpNotEqual, Key: "b", Int: 3},
				{Target: sm.TargetCreate, Result: sm.CmpLess, Key: "c", Int: -7},
				{Target: sm.TargetMod, Result: sm.CmpGreater, Key: "d\x00\xff", Int: math.MaxInt64},
				{Target: sm.TargetLease, Result: sm.CmpEqual, Key: "", Int: math.MinInt64},
			},
			Then: []sm.Op{
				{Kind: sm.OpPut, Key: "a", Value: []byte{0, 1, 2}, Lease: 42, LeaseTTL: 5000, PrevKV: true},
				{Kind: sm.OpDelete, Key: "b", End: "c", PrevKV: true},
				{Kind: sm.OpRange, Key: "a", End: "\x00", Range: sm.RangeOpts{
					Limit: 10, Revision: 3, KeysOnly: true, CountOnly: true, SortTarget: sm.SortValue, SortDesc: true, Sorted: true}},
			},
			Else: []sm.Op{
				{Kind: sm.OpRange, Key: "z", Range: sm.RangeOpts{SortTarget: sm.SortMod}},
				{Kind: sm.OpPut, Key: "y", Value: bytes.Repeat([]byte("v"), 300)},
			},
		}},
		{Kind: sm.CmdCompact, Revision: 17},
		{Kind: sm.CmdCompact, Revision: -1},
		{Kind: sm.CmdGrant, LeaseID: 7, TTL: 10000},
		{Kind: sm.CmdGrant, LeaseID: math.MaxInt64, TTL: math.MinInt64},
		{Kind: sm.CmdRevoke, LeaseID: 7},
		{Kind: sm.CmdKeepAlive, LeaseID: 9},
		{Kind: sm.CmdExpire},
		{Kind: sm.CmdExpire, Expire: []sm.ExpireItem{{ID: 1, Renew: 2}, {ID: -3, Renew: math.MaxUint64}}},
		{Kind: sm.CmdMember, Member: sm.MemberRecord{ID: 3, Name: "n3", Address: "127.0.0.1:7000"}},
		{Kind: sm.CmdMember, Member: sm.MemberRecord{ID: math.MaxUint64, Name: "x"}},
		{Kind: sm.CmdAlarm, Alarm: sm.AlarmNoSpace, Activate: true},
		{Kind: sm.CmdAlarm, Alarm: 200},
		{Kind: sm.CmdHashCheck},
		{Kind: sm.CmdHashReport, Check: 12, Replica: 3, Hash: math.MaxUint64},
	}
}

// lastKind is the highest command kind the package defines.
const lastKind = sm.CmdHashReport

func TestCommandRoundTrip(t *testing.T) {
	kinds := map[uint8]bool{}
	for i, c := range sampleCommands() {
		kinds[c.Kind] = true
		b := sm.EncodeCommand(c)
		got, err := sm.DecodeCommand(b)
		if err != nil {
			t.Fatalf("#%d: decode: %v", i, err)
		}
		if !deepEqual(normCommand(got), normCommand(c)) {
			t.Fatalf("#%d: round trip:\n got %+v\nwant %+v", i, got, c)
		}
		// Re-encoding the decoded command gives the same bytes.
		if b2 := sm.EncodeCommand(got); !bytes.Equal(b, b2) {
			t.Fatalf("#%d: re-encoding differs:\n%x\n%x", i, b, b2)
		}
	}
	for k := sm.CmdTxn; k <= lastKind; k++ {
		if !kinds[k] {
			t.Fatalf("kind %d not covered", k)
		}
	}
}

func TestCommandDecodeCopiesValues(t *testing.T) {
	c := &sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{
		Compares: []sm.Compare{{Target: sm.TargetValue, Key: "k", Value: []byte("cmp")}},
		Then:     []sm.Op{putOp("k", "value")},
	}}
	b := sm.EncodeCommand(c)
	got, err := sm.DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xEE
	}
	if string(got.Txn.Then[0].Value) != "value" || string(got.Txn.Compares[0].Value) != "cmp" || got.Txn.Then[0].Key != "k" {
		t.Fatalf("decoded command aliases its input: %+v", got)
	}
}

func TestCommandDecodeRejects(t *testing.T) {
	valid := sm.EncodeCommand(&sm.Command{Kind: sm.CmdGrant, LeaseID: 1, TTL: 1000})
	withVersion := func(v byte) []byte { b := append([]byte(nil), valid...); b[0] = v; return b }

	// A Txn with one op whose single bytes we can corrupt: layout is
	// version, kind, ncmp=0, nthen=1, op..., nelse=0.
	op := sm.EncodeCommand(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Then: []sm.Op{{Kind: sm.OpRange, Key: "k"}}}})
	// op bytes: [1 1 0 1 | kind=3 keylen=1 'k' endlen=0 vallen=0 lease=0 ttl=0 prevkv=0 limit=0 rev=0 keysonly=0 countonly=0 sort=0 desc=0 sorted=0 mincreate=0 maxcreate=0 | 0]
	if len(op) != 4+17+1 {
		t.Fatalf("unexpected txn layout %x", op)
	}
	set := func(b []byte, i int, v byte) []byte { c := append([]byte(nil), b...); c[i] = v; return c }
	cmp := sm.EncodeCommand(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{Compares: []sm.Compare{{Key: "k"}}}})
	// cmp bytes: [1 1 1 | target result keylen 'k' vallen int | nthen nelse]

	cases := map[string][]byte{
		"empty":                     nil,
		"version only":              {1},
		"version 0":                 withVersion(0),
		"version 2":                 withVersion(2),
		"version 255":               withVersion(255),
		"kind 0":                    {1, 0},
		"kind after the last":       {1, lastKind + 1, 2},
		"kind after the last, long": append([]byte{1, lastKind + 1}, valid[2:]...),
		"kind 255":                  {1, 255},
		"trailing byte":             append(append([]byte(nil), valid...), 0),
		"trailing garbage":          append(append([]byte(nil), op...), 1, 2, 3),
		"op kind 0":                 set(op, 4, 0),
		"op kind 4":                 set(op, 4, 4),
		"prevkv flag 2":             set(op, 11, 2),
		"keysonly flag 2":           set(op, 14, 2),
		"countonly flag 9":          set(op, 15, 9),
		"sort target 5":             set(op, 16, 5),
		"sortdesc flag 2":           set(op, 17, 2),
		"sorted flag 2":             set(op, 18, 2),
		"compare target 5":          set(cmp, 3, 5),
		"compare result 4":          set(cmp, 4, 4),
		"key longer":                set(op, 5, 50),
		"huge compare count":        append([]byte{1, 1}, binary.AppendUvarint(nil, 1<<40)...),
		"huge op count":             append([]byte{1, 1, 0}, binary.AppendUvarint(nil, math.MaxUint64)...),
		"huge expire count":         append([]byte{1, sm.CmdExpire}, binary.AppendUvarint(nil, 1<<30)...),
		"member name missing":       {1, sm.CmdMember, 5},
		"member name too long":      {1, sm.CmdMember, 5, 9, 'n', 0},
		"overlong varint":           {1, sm.CmdCompact, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	}
	for name, b := range cases {
		if c, err := sm.DecodeCommand(b); err == nil {
			t.Errorf("%s: %x decoded to %+v, want error", name, b, c)
		}
	}
	// Sanity: the unmodified bases decode.
	for _, b := range [][]byte{valid, op, cmp} {
		if _, err := sm.DecodeCommand(b); err != nil {
			t.Fatalf("base %x: %v", b, err)
		}
	}
}

func TestCommandDecodeRejectsEveryTruncation(t *testing.T) {
	for i, c := range sampleCommands() {
		b := sm.EncodeCommand(c)
		for n := 0; n < len(b); n++ {
			var got *sm.Command
			var err error
			got, err = sm.DecodeCommand(b[:n])
			if err == nil {
				t.Fatalf("#%d: prefix %d/%d decoded to %+v", i, n, len(b), got)
			}
		}
	}
}

func TestCommandDecodeBoundedAllocation(t *testing.T) {
	// A tiny input claiming a million compares must fail without allocating
	// anything like a million entries.
	b := append([]byte{1, sm.CmdTxn}, binary.AppendUvarint(nil, 1<<20)...)
	allocs := testing.AllocsPerRun(10, func() {
		if _, err := sm.DecodeCommand(b); err == nil {
			t.Fatal("decoded")
		}
	})
	if allocs > 5 {
		t.Fatalf("%v allocations for a 5-byte input", allocs)
	}
}

func sampleResults() []*sm.Result {
	kv := func(k, v string, c, m, ver, l int64) *sm.KV {
		return &sm.KV{Key: k, Value: []byte(v), CreateRevision: c, ModRevision: m, Version: ver, Lease: l}
	}
	return []*sm.Result{
		{},
		{Code: sm.CodeLeaseNotFound, Revision: 5},
		{Code: sm.Code(math.MaxUint64), Revision: math.MinInt64, TTL: math.MaxInt64},
		{Code: sm.CodeOK, Revision: 9, Succeeded: true, TTL: 3000},
		{Code: sm.CodeOK, Revision: 12, Succeeded: true, Ops: []sm.OpResult{
			{Kind: sm.OpPut, PrevKVs: []*sm.KV{kv("a", "old", 2, 3, 2, 0)}},
			{Kind: sm.OpDelete, Deleted: 2, PrevKVs: []*sm.KV{kv("b", "", 4, 4, 1, 7), kv("c", "x", 5, 6, 2, 0)}},
			{Kind: sm.OpRange, KVs: []*sm.KV{kv("d", "1", 1, 1, 1, 0), kv("e\x00", "\xff", -1, -2, -3, -4)}, Count: 10, More: true},
			{Kind: sm.OpRange, Count: 3},
			{},
		}},
	}
}

func TestResultRoundTrip(t *testing.T) {
	for i, r := range sampleResults() {
		b := sm.EncodeResult(r)
		got, err := sm.DecodeResult(b)
		if err != nil {
			t.Fatalf("#%d: decode: %v", i, err)
		}
		if !deepEqual(normResult(got), normResult(r)) {
			t.Fatalf("#%d: round trip:\n got %+v\nwant %+v", i, got, r)
		}
		if b2 := sm.EncodeResult(got); !bytes.Equal(b, b2) {
			t.Fatalf("#%d: re-encoding differs", i)
		}
		for n := 0; n < len(b); n++ {
			var got *sm.Result
			var err error
			got, err = sm.DecodeResult(b[:n])
			if err == nil {
				t.Fatalf("#%d: prefix %d/%d decoded to %+v", i, n, len(b), got)
			}
		}
		if _, err := sm.DecodeResult(append(append([]byte(nil), b...), 0)); err == nil {
			t.Fatalf("#%d: trailing byte accepted", i)
		}
		for _, v := range []byte{0, 2, 255} {
			c := append([]byte(nil), b...)
			c[0] = v
			if _, err := sm.DecodeResult(c); err == nil {
				t.Fatalf("#%d: version %d accepted", i, v)
			}
		}
	}
	// Succeeded is a strict flag: version, code 0, revision 0, flag 2.
	if _, err := sm.DecodeResult([]byte{1, 0, 0, 2, 0, 0}); err == nil {
		t.Fatal("flag 2 accepted")
	}
	if _, err := sm.DecodeResult([]byte{1, 0, 0, 1, 0, 0}); err != nil {
		t.Fatalf("valid minimal result rejected: %v", err)
	}
}

// Results produced by the machine itself survive the codec.
func TestResultRoundTripFromMachine(t *testing.T) {
	h := newHarness(t)
	h.grant(3, 1000)
	h.putLease("a", "1", 3)
	h.put("b", "2")
	res, _ := h.mustOK(&sm.Command{Kind: sm.CmdTxn, Txn: sm.Txn{
		Compares: []sm.Compare{{Target: sm.TargetVersion, Key: "a", Int: 1}},
		Then: []sm.Op{
			{Kind: sm.OpPut, Key: "a", Value: []byte("x"), PrevKV: true, Lease: 3},
			{Kind: sm.OpRange, Key: "", End: "\x00"},
			{Kind: sm.OpDelete, Key: "b", PrevKV: true},
		},
	}})
	got, err := sm.DecodeResult(sm.EncodeResult(res))
	if err != nil {
		t.Fatal(err)
	}
	if !deepEqual(normResult(got), normResult(res)) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, res)
	}
}
