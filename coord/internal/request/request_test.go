package request

import (
	"errors"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/sm"
)

type option func(*Options)

func prefix() option {
	return func(o *Options) { o.Allow("WithPrefix", Get|Delete|Watch); o.Prefix = true }
}
func fromKey() option {
	return func(o *Options) { o.Allow("WithFromKey", Get|Delete|Watch); o.FromKey = true }
}
func lease(id int64) option { return func(o *Options) { o.Allow("WithLease", Put); o.Lease = id } }
func withRange(e string) option {
	return func(o *Options) { o.Allow("WithRange", Get|Delete|Watch); o.End = e }
}

// Options that do not apply to a call, or that exclude each other, fail
// the call with ErrInvalidOption; the range options resolve to the range's
// end.
func TestOptions(t *testing.T) {
	if _, err := Build(Put, []option{prefix()}); !errors.Is(err, errdefs.ErrInvalidOption) {
		t.Errorf("WithPrefix on a Put: %v", err)
	}
	if _, err := Build(Get, []option{prefix(), fromKey()}); !errors.Is(err, errdefs.ErrInvalidOption) {
		t.Errorf("WithPrefix and WithFromKey: %v", err)
	}
	for _, tc := range []struct {
		opts     []option
		key, end string
	}{
		{nil, "/a", ""},
		{[]option{prefix()}, "/a/", "/a0"},
		{[]option{prefix()}, "", "\x00"},
		{[]option{prefix()}, "\xff\xff", "\x00"},
		{[]option{prefix()}, "a\xff", "b"},
		{[]option{fromKey()}, "/a", "\x00"},
		{[]option{withRange("/b")}, "/a", "/b"},
	} {
		o, err := Build(Get, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := o.RangeEnd(tc.key); got != tc.end {
			t.Errorf("range end of %q: %q, want %q", tc.key, got, tc.end)
		}
	}
	l := Limits{MaxKeyBytes: 4, MaxValueBytes: 2, MaxTxnOps: 2}
	o, _ := Build(Get, []option{withRange("/a")})
	for _, tc := range []struct {
		err  error
		want error
	}{
		{l.CheckKey(""), errdefs.ErrEmptyKey},
		{l.CheckKey("/abcd"), errdefs.ErrKeyTooLarge},
		{l.CheckValue([]byte("abc")), errdefs.ErrValueTooLarge},
		{l.CheckRange("/b", o), errdefs.ErrInvalidOption},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%v, want %v", tc.err, tc.want)
		}
	}
	if err := l.CheckRange("", &Options{Prefix: true}); err != nil {
		t.Errorf("an empty key with WithPrefix: %v", err)
	}
}

// Keys with one first path segment share a shard; a range stays in one
// shard only inside one directory.
func TestRouter(t *testing.T) {
	r := Router{Shards: 8}
	if r.ShardOf("/orders/a") != r.ShardOf("/orders/b") || r.ShardOf("orders/c") != r.ShardOf("/orders") {
		t.Fatal("keys of one directory in different shards")
	}
	spread := map[int]bool{}
	for _, dir := range []string{"/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h", "/i", "/j"} {
		spread[r.ShardOf(dir+"/k")] = true
	}
	if len(spread) < 3 {
		t.Fatalf("10 directories in %d of 8 shards", len(spread))
	}
	for _, tc := range []struct {
		key, end string
		one      bool
	}{
		{"/orders/a", "", true},
		{"/orders/", "/orders0", true},
		{"/orders/a", "/orders/z", true},
		{"/orders/a", "/ordersz", false},
		{"/orders", "/orders0", false},
		{"/orders/a", "\x00", false},
	} {
		got := r.RangeShard(tc.key, tc.end)
		if (got >= 0) != tc.one || tc.one && got != r.ShardOf(tc.key) {
			t.Errorf("RangeShard(%q, %q) = %d, in one shard: want %v", tc.key, tc.end, got, tc.one)
		}
	}
	if (Router{Shards: 1}).RangeShard("/a", "\x00") != 0 {
		t.Error("a single shard holds every range")
	}
}

// A transaction is built for the one shard of its keys, within the op
// limit, with its leased puts pointed out and every bad op reported.
func TestBuildTxn(t *testing.T) {
	l, r := Limits{MaxKeyBytes: 64, MaxValueBytes: 64, MaxTxnOps: 3}, Router{Shards: 4}
	put := func(key string, opts ...option) Op {
		o, err := Build(Put, opts)
		return Op{Kind: sm.OpPut, Key: key, Value: []byte("v"), Opts: o, Err: err}
	}
	cmd, shard, leased, err := l.Build(&Txn{Cmps: []Cmp{{C: sm.Compare{Key: "/x/1"}}}, Then: []Op{put("/x/2", lease(7)), put("/x/3")}}, r)
	if err != nil {
		t.Fatal(err)
	}
	if shard != r.ShardOf("/x") || len(cmd.Txn.Then) != 2 || len(leased) != 1 || leased[0] != &cmd.Txn.Then[0] || leased[0].Lease != 7 {
		t.Fatalf("shard %d, %d ops, leased %v", shard, len(cmd.Txn.Then), leased)
	}
	if _, _, _, err := l.Build(&Txn{}, r); err != nil {
		t.Fatalf("an empty Txn: %v", err)
	}
	for name, tc := range map[string]struct {
		txn  Txn
		want error
	}{
		"too many ops": {Txn{Cmps: []Cmp{{C: sm.Compare{Key: "/x/1"}}}, Then: []Op{put("/x/2"), put("/x/3"), put("/x/4")}}, errdefs.ErrTooManyOps},
		"two shards":   {Txn{Then: []Op{put("/x/1"), put("/y/1")}}, errdefs.ErrCrossShard},
		"bad compare":  {Txn{Cmps: []Cmp{{Err: errdefs.ErrInvalidOption}}}, errdefs.ErrInvalidOption},
		"bad option":   {Txn{Else: []Op{put("/x/1", prefix())}}, errdefs.ErrInvalidOption},
		"empty key":    {Txn{Then: []Op{put("")}}, errdefs.ErrEmptyKey},
	} {
		if _, _, _, err := l.Build(&tc.txn, r); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
