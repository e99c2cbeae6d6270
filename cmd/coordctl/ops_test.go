package main

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/httpapi"
	"github.com/coordkit/coordkit/coord/pubsub"
)

func TestParseFrom(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		from, want string // the request's fields, or the error
	}{
		{"now", "map[from:now]"},
		{"earliest", "map[from:earliest]"},
		{"42", "map[offset:42]"},
		{"2025-01-01T00:00:00Z", "map[time:2025-01-01 00:00:00 +0000 UTC]"},
		{"90m", "map[time:2025-01-02 01:34:05 +0000 UTC]"},
		{"0", "--from: offset 0 is not positive"},
		{"-5m", `--from: "-5m" is not now, earliest, an offset, an RFC 3339 time or a duration ago (such as 10m)`},
		{"yesterday", `--from: "yesterday" is not now, earliest`},
	} {
		req, err := parseFrom(tc.from, now)
		got := fmt.Sprint(req)
		if err != nil {
			got = err.Error()
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("parseFrom(%q) = %s, want %s", tc.from, got, tc.want)
		}
	}
}

// TestTopicRetention: a tail from an offset retention removed says where
// the topic starts now; one from a duration ago starts there.
func TestTopicRetention(t *testing.T) {
	c, ep := newServer(t)
	var offsets []string
	for _, m := range []string{"a", "b", "c"} {
		out := ok(t, ep, "topic", "publish", "jobs", m)
		offsets = append(offsets, strings.TrimSuffix(strings.TrimPrefix(out, "published at offset "), "\n"))
	}
	ctx := coordtest.Context(t, waitFor)
	ps := pubsub.New(c.Node(0), "/topics")
	if err := ps.SetRetention(ctx, "jobs", pubsub.Retention{MaxMessages: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Trim(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	fails(t, "no longer retained; earliest available is "+offsets[2]+"; resume with --from earliest", ep, "topic", "tail", "jobs", "--from", offsets[0])
	if out := ok(t, ep, "topic", "stats", "jobs"); out != "topic jobs: 1 messages, 1 bytes, offsets "+offsets[2]+" to "+offsets[2]+", 2 removed by retention\n" {
		t.Fatalf("topic stats after a trim: %q", out)
	}
	tail := startCtl(t, ep, "topic", "tail", "jobs", "--from", "1h")
	tail.waitOutput(`^c\n$`)
	tail.interrupt(syscall.SIGINT)
	// Topics under another directory.
	ok(t, ep, "topic", "publish", "jobs", "elsewhere", "--dir", "/other")
	if out := ok(t, ep, "topic", "stats", "jobs", "--dir", "/other", "-w", "json"); !regexp.MustCompile(`^\{"messages":1,"bytes":9,"first":\d+,"last":\d+,"removed":0\}\n$`).MatchString(out) {
		t.Fatalf("topic stats --dir /other -w json: %q", out)
	}
}

// TestSnapshotRestore: restore moves on from an endpoint it cannot connect
// to, and the API's refusals read as errors.
func TestSnapshotRestore(t *testing.T) {
	_, src := newServer(t)
	ok(t, src, "put", "/r/a", "1")
	file := filepath.Join(t.TempDir(), "backup")
	ok(t, src, "snapshot", "save", file)
	dst := coordtest.New(t, 1)
	srv := httptest.NewServer(httpapi.New(dst.Node(0)))
	defer srv.Close()
	ep := "--endpoints=" + deadEndpoint(t) + "," + srv.URL
	if out := ok(t, ep, "snapshot", "restore", file); out != "Restored 1 keys from "+file+"\n" {
		t.Fatalf("snapshot restore: %q", out)
	}
	if out := ok(t, ep, "get", "/r/a"); out != "/r/a\n1\n" {
		t.Fatalf("get after the restore: %q", out)
	}
	fails(t, "coord: cluster not empty: it holds 1 keys; restore into a new cluster", ep, "snapshot", "restore", file)
	fails(t, "no such file or directory", ep, "snapshot", "restore", filepath.Join(t.TempDir(), "none"))
	fails(t, "snapshot restore takes 1 argument(s), got 0", ep, "snapshot", "restore")
}

// TestCheckHashFindsADivergedMember: with one member's copy diverged,
// check hash prints the different hash and exits 1 naming the member, and
// alarm list names it in the CORRUPT alarm.
func TestCheckHashFindsADivergedMember(t *testing.T) {
	c := coordtest.New(t, 3, coordtest.WithConfig(func(cfg *coord.Config) { cfg.HashCheckInterval = -1 }))
	srv := httptest.NewServer(httpapi.New(c.Node(0)))
	t.Cleanup(srv.Close)
	ep := "--endpoints=" + srv.URL
	ok(t, ep, "put", "/k", "v")
	for i := range 3 {
		coordtest.Eventually(t, waitFor, func() bool { return coordtest.Count(t, c.Node(i), "/k") == 1 }, "member %d behind", i)
	}
	bad := c.Config(1).Name
	if !c.Diverge(1, "/k", []byte("w")) {
		t.Fatal("Diverge found no /k")
	}
	code, out, errOut := ctl(t, ep, "check", "hash")
	if code != 1 || !strings.Contains(errOut, "shard 0: "+bad+" diverged (CORRUPT alarm raised)") ||
		!regexp.MustCompile(`^shard 0 at revision \d+: 3 hashes, DIFFERENT\n`).MatchString(out) {
		t.Fatalf("check hash with %s diverged: exit %d, stdout %q, stderr %q", bad, code, out, errOut)
	}
	if out := ok(t, ep, "alarm", "list"); out != "shard:0 alarm:CORRUPT members:"+bad+"\n" {
		t.Fatalf("alarm list: %q", out)
	}
	fails(t, "CORRUPT alarm", ep, "put", "/k", "x")
	c.Diverge(1, "/k", []byte("v"))
	ok(t, ep, "check", "hash")
	ok(t, ep, "alarm", "disarm", "--alarm", "corrupt")
	ok(t, ep, "put", "/k", "x")
}
