package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coordkit/coordkit/internal/proctest"
)

// The subtests of TestEndToEnd for the operator's commands: ls,
// move-leader, svc, topic and snapshot restore.

func (e *e2eCluster) testLs(t *testing.T) {
	for _, kv := range [][2]string{{"/e2e/ls/a", "1"}, {"/e2e/ls/a/x", "2"}, {"/e2e/ls/b/c", "3"}, {"/e2e/ls/b/d", "4"}} {
		e.ctl(t, e.eps[0], "put", kv[0], kv[1])
	}
	// A key and a directory may share a name.
	for _, dir := range []string{"/e2e/ls", "/e2e/ls/"} {
		if out := e.ctl(t, e.eps[1], "ls", dir); out != "a\na/\nb/\n" {
			t.Fatalf("ls %s: %q", dir, out)
		}
	}
	// The member that applied the puts reads them from its own replica.
	if out := e.ctl(t, e.eps[0], "ls", "/e2e/ls/b", "--serializable"); out != "c\nd\n" {
		t.Fatalf("ls --serializable: %q", out)
	}
	if out := e.ctl(t, e.eps[2], "ls"); out != "e2e/\n" {
		t.Fatalf("ls of the top level: %q", out)
	}
	if out := e.ctl(t, e.eps[2], "ls", "/e2e/nothing"); out != "" {
		t.Fatalf("ls of a missing directory: %q", out)
	}
	out := e.ctl(t, e.eps[2], "ls", "/e2e/ls", "-w", "table")
	for _, re := range []string{`(?m)^\| NAME \| VALUE \| VERSION \| MOD REVISION \| LEASE \|$`,
		`(?m)^\| a    \| 1     \| 1       \| \d+ +\| -     \|$`, `(?m)^\| a/   \|       \|         \| +\|       \|$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("ls -w table lacks %s:\n%s", re, out)
		}
	}
	var list struct {
		Entries []struct {
			Name []byte `json:"name"`
			Dir  bool   `json:"dir"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(e.ctl(t, e.eps[2], "ls", "/e2e/ls", "-w", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(list.Entries); got != fmt.Sprint([]struct {
		Name []byte
		Dir  bool
	}{{[]byte("/e2e/ls/a"), false}, {[]byte("/e2e/ls/a/"), true}, {[]byte("/e2e/ls/b/"), true}}) {
		t.Fatalf("ls -w json: %s", got)
	}
	e.fails(t, "ls takes at most 1 argument(s), got 2", e.eps[0], "ls", "/a", "/b")
}

func (e *e2eCluster) testMoveLeader(t *testing.T) {
	// leader is shard 0's leader as the member behind ep sees it.
	leader := func(ep string) string {
		var ms struct {
			Members []member `json:"members"`
		}
		if err := json.Unmarshal([]byte(e.ctl(t, ep, "member", "list", "-w", "json")), &ms); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms.Members {
			if slices.Contains(m.Leads, 0) {
				return m.Name
			}
		}
		return ""
	}
	var from string
	e.await(t, "m3 sees a leader of shard 0", func() error {
		if from = leader(e.eps[2]); from == "" {
			return fmt.Errorf("no leader")
		}
		return nil
	})
	target := e.names[0]
	if from == target {
		target = e.names[1]
	}
	if out := e.ctl(t, e.eps[2], "move-leader", target); out != "Leadership of shard 0 moved from "+from+" to "+target+".\n" {
		t.Fatalf("move-leader %s: %q", target, out)
	}
	if got := leader(e.eps[2]); got != target {
		t.Fatalf("after move-leader %s, m3 sees %s lead shard 0", target, got)
	}
	if out := e.ctl(t, e.eps[2], "move-leader", target); out != "Member "+target+" already leads shard 0.\n" {
		t.Fatalf("move-leader to the leader: %q", out)
	}
	if out := e.ctl(t, e.eps[2], "move-leader", target, "--shard", "all", "-w", "json"); out != `[{"shard":0,"from":"`+target+`","to":"`+target+`"}]`+"\n" {
		t.Fatalf("move-leader --shard all -w json: %q", out)
	}
	if out := e.ctl(t, e.eps[2], "move-leader", target, "-w", "table"); !strings.Contains(out, "| 0     | "+target+"   | "+target+" |") {
		t.Fatalf("move-leader -w table:\n%s", out)
	}
	e.fails(t, `member not found: "ghost"`, e.eps[0], "move-leader", "ghost")
	e.fails(t, "--shard: no shard 1: the cluster has 1 (0 to 0)", e.eps[0], "move-leader", target, "--shard", "1")
	e.fails(t, `--shard: "first" is neither a shard number nor all`, e.eps[0], "move-leader", target, "--shard", "first")
	e.fails(t, "move-leader takes 1 argument(s), got 0", e.eps[0], "move-leader")
}

// register registers an instance through the HTTP API of the member at
// client, and holds it until the returned function is called (or the test
// ends).
func register(t *testing.T, client, body string) (deregister func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tr := &http.Transport{}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+client+"/v1/registry/register", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	stop := func() {
		cancel()
		resp.Body.Close()
		tr.CloseIdleConnections()
	}
	t.Cleanup(stop)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(line, `{"registered":`) {
		t.Fatalf("register %s: %s %q %v", body, resp.Status, line, err)
	}
	return stop
}

func (e *e2eCluster) testSvc(t *testing.T) {
	w1 := register(t, e.clients[0], `{"service":"web","id":"w1","addr":"127.0.0.1:8081","metadata":{"zone":"a","tier":"1"}}`)
	watch := e.start(t, "svc-watch", e.eps[1], "svc", "watch", "web")
	var rev string
	e.await(t, "svc watch prints w1, then synced", func() error {
		b, err := os.ReadFile(watch.Log)
		m := regexp.MustCompile(`^added, w1, 127\.0\.0\.1:8081, passing, 0, tier=1,zone=a, (\d+)\nsynced\n$`).FindSubmatch(b)
		if m == nil {
			return fmt.Errorf("svc watch printed %q (%v)", b, err)
		}
		rev = string(m[1])
		return nil
	})
	// From a revision: the changes after it only.
	since := e.start(t, "svc-watch-from", e.eps[2], "svc", "watch", "web", "--from-rev", rev, "-w", "json")
	if out := e.ctl(t, e.eps[2], "svc", "list"); out != "web\n" {
		t.Fatalf("svc list: %q", out)
	}
	if out := e.ctl(t, e.eps[0], "svc", "list", "web"); out != "w1, 127.0.0.1:8081, passing, 0, tier=1,zone=a, "+rev+"\n" {
		t.Fatalf("svc list web: %q", out)
	}
	out := e.ctl(t, e.eps[1], "svc", "list", "web", "-w", "table")
	if !regexp.MustCompile(`(?m)^\| ID \| +ADDR +\| STATUS  \| WEIGHT \| +METADATA +\| REVISION \|\n\+`).MatchString(out) ||
		!strings.Contains(out, "| w1 | 127.0.0.1:8081 | passing | 0      | tier=1,zone=a | "+rev) {
		t.Fatalf("svc list web -w table:\n%s", out)
	}
	register(t, e.clients[2], `{"service":"web","id":"w2","addr":"127.0.0.1:8082","status":"warning","weight":3}`)
	e.await(t, "svc watch prints w2's registration", func() error { return contains(watch.Log, "\nadded, w2, 127.0.0.1:8082, warning, 3, , ") })
	if out := e.ctl(t, e.eps[1], "svc", "list", "web", "--passing-only"); !strings.HasPrefix(out, "w1, ") || strings.Contains(out, "w2") {
		t.Fatalf("svc list web --passing-only: %q", out)
	}
	w1()
	e.await(t, "svc watch prints w1's removal", func() error { return contains(watch.Log, "\nremoved, w1, 127.0.0.1:8081, ") })
	if err := watch.Signal(syscall.SIGINT, e2eWait); err != nil {
		t.Fatalf("svc watch after SIGINT: %v", err)
	}
	e.await(t, "svc watch --from-rev prints w2's registration and w1's removal", func() error {
		b, err := os.ReadFile(since.Log)
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if err != nil || len(lines) != 2 || !strings.Contains(lines[0], `"type":"added","instance":{"service":"web","id":"w2"`) ||
			!strings.Contains(lines[1], `"type":"removed","instance":{"service":"web","id":"w1"`) {
			return fmt.Errorf("svc watch --from-rev -w json printed %q (%v)", b, err)
		}
		return nil
	})
	if err := since.Signal(syscall.SIGTERM, e2eWait); err != nil {
		t.Fatalf("svc watch --from-rev after SIGTERM: %v", err)
	}
	e.fails(t, "--passing-only and --serializable apply to the instances of a SERVICE", e.eps[0], "svc", "list", "--passing-only")
	e.fails(t, "svc watch takes 1 argument(s), got 0", e.eps[0], "svc", "watch")
	e.fails(t, `registry: invalid instance: service "a/b"`, e.eps[0], "svc", "watch", "a/b")
	e.fails(t, "svc needs a subcommand: list or watch", e.eps[0], "svc")
}

func (e *e2eCluster) testTopic(t *testing.T) {
	offset := func(out string) int64 {
		t.Helper()
		m := regexp.MustCompile(`^published at offset (\d+)\n$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("topic publish: %q", out)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	o1 := offset(e.ctl(t, e.eps[0], "topic", "publish", "orders", "m1"))
	tail := e.start(t, "topic-tail", e.eps[1], "topic", "tail", "orders", "--from", "earliest")
	e.await(t, "topic tail prints m1", func() error { return contains(tail.Log, "m1\n") })
	o2 := offset(e.ctl(t, e.eps[2], "topic", "publish", "orders", "two words"))
	if o2 <= o1 {
		t.Fatalf("offsets %d then %d", o1, o2)
	}
	from := e.start(t, "topic-tail-from", e.eps[2], "topic", "tail", "orders", "--from", strconv.FormatInt(o2, 10), "-w", "json")
	e.await(t, "topic tail prints both messages", func() error {
		if b, err := os.ReadFile(tail.Log); string(b) != "m1\ntwo words\n" {
			return fmt.Errorf("topic tail printed %q (%v)", b, err)
		}
		return nil
	})
	e.await(t, "topic tail --from OFFSET prints the second message", func() error {
		return contains(from.Log, fmt.Sprintf(`{"message":{"topic":"orders","offset":%d,"time":`, o2))
	})
	for _, p := range []*proctest.Proc{tail, from} {
		if err := p.Signal(syscall.SIGINT, e2eWait); err != nil {
			t.Fatalf("%s after SIGINT: %v", p.Name, err)
		}
	}
	if b, _ := os.ReadFile(from.Log); strings.Count(string(b), "\n") != 1 || !strings.Contains(string(b), `"payload":"dHdvIHdvcmRz"`) {
		t.Fatalf("topic tail --from %d -w json printed %q", o2, b)
	}
	want := fmt.Sprintf("topic orders: 2 messages, 11 bytes, offsets %d to %d, 0 removed by retention\n", o1, o2)
	if out := e.ctl(t, e.eps[1], "topic", "stats", "orders"); out != want {
		t.Fatalf("topic stats: %q, want %q", out, want)
	}
	out := e.ctl(t, e.eps[1], "topic", "stats", "orders", "-w", "table")
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^\| orders \| 2 +\| 11 +\| %d +\| %d +\| 0 +\|$`, o1, o2)).MatchString(out) {
		t.Fatalf("topic stats -w table:\n%s", out)
	}
	if out := e.ctl(t, e.eps[1], "topic", "stats", "nothing"); out != "topic nothing: 0 messages, 0 bytes, 0 removed by retention\n" {
		t.Fatalf("topic stats of an empty topic: %q", out)
	}
	e.fails(t, `--from: "yesterday" is not now, earliest`, e.eps[0], "topic", "tail", "orders", "--from", "yesterday")
	e.fails(t, `topic "a/b" must be non-empty, without '/'`, e.eps[0], "topic", "publish", "a/b", "x")
	e.fails(t, "topic stats takes 1 argument(s), got 0", e.eps[0], "topic", "stats")

	// A message ID is published once.
	d1 := offset(e.ctl(t, e.eps[0], "topic", "publish", "idle", "once", "--msg-id", "job-1"))
	if d2 := offset(e.ctl(t, e.eps[1], "topic", "publish", "idle", "once", "--msg-id", "job-1")); d2 != d1 {
		t.Fatalf("a --msg-id published twice: offsets %d and %d", d1, d2)
	}
	e.ctl(t, e.eps[2], "topic", "publish", "idle", "other")
	if out := e.ctl(t, e.eps[1], "topic", "stats", "idle"); !strings.HasPrefix(out, "topic idle: 2 messages,") {
		t.Fatalf("topic stats after a duplicate: %q", out)
	}
	// An idle topic is trimmed by age by the member leading its shard, with
	// nothing published after the retention is set.
	if out := e.ctl(t, e.eps[0], "topic", "retention", "idle", "--max-age", "500ms"); out != "OK\n" {
		t.Fatalf("topic retention: %q", out)
	}
	e.await(t, "the idle topic trimmed by age", func() error {
		if out := e.ctl(t, e.eps[2], "topic", "stats", "idle"); out != "topic idle: 0 messages, 0 bytes, 2 removed by retention\n" {
			return fmt.Errorf("topic stats: %q", out)
		}
		return nil
	})
	e.fails(t, "negative", e.eps[0], "topic", "retention", "idle", "--max-messages", "-1")
}

// testCheckHash: every member's hash of every shard is printed and they
// agree; the alarms list stays empty.
func (e *e2eCluster) testCheckHash(t *testing.T) {
	out := e.ctl(t, e.eps[1], "check", "hash")
	m := regexp.MustCompile(`^shard 0 at revision \d+: 3 hashes, equal\n  (\S+) ([0-9a-f]+)\n  (\S+) ([0-9a-f]+)\n  (\S+) ([0-9a-f]+)\n$`).FindStringSubmatch(out)
	if m == nil || m[2] != m[4] || m[4] != m[6] {
		t.Fatalf("check hash:\n%s", out)
	}
	members := []string{m[1], m[3], m[5]}
	slices.Sort(members)
	if want := slices.Sorted(slices.Values(e.names)); !slices.Equal(members, want) {
		t.Fatalf("check hash named %v, want %v", members, want)
	}
	out = e.ctl(t, e.eps[0], "check", "hash", "-w", "table")
	if n := strings.Count(out, "| false    |"); n != 3 {
		t.Fatalf("check hash -w table (%d rows not diverged):\n%s", n, out)
	}
	if out := e.ctl(t, e.eps[2], "alarm", "list"); out != "" {
		t.Fatalf("alarm list after a clean check: %q", out)
	}
	e.fails(t, `alarm kind "BOGUS"`, e.eps[0], "alarm", "disarm", "--alarm", "bogus")
}

// single starts a one-member cluster named name with extra flags, and
// waits until it says it is ready.
func (e *e2eCluster) single(t *testing.T, name string, extra ...string) *proctest.Member {
	t.Helper()
	m := proctest.NewMember(t, e.member, e.dir, name)
	m.Args = append(m.Flags(name+"=http://"+m.Peer, "coordctl-e2e-"+name, "new", proctest.SecretFile(t, e.dir)),
		append([]string{"--heartbeat-interval", "50", "--election-timeout", "1000"}, extra...)...)
	m.Start(t)
	m.Eventually(t, e2eWait, 20*time.Millisecond, name+" ready", func() error { return contains(m.Log, "member "+name+" ready\n") })
	return m
}

func (e *e2eCluster) testSnapshotRestore(t *testing.T) {
	lease := regexp.MustCompile(`^lease ([0-9a-f]+) granted`).FindStringSubmatch(e.ctl(t, e.eps[0], "lease", "grant", "300"))
	if lease == nil {
		t.Fatal("lease grant printed no ID")
	}
	e.ctl(t, e.eps[0], "put", "/e2e/restore/leased", "x", "--lease", lease[1])
	file := filepath.Join(e.dir, "restore.db")
	e.ctl(t, e.eps[0], "snapshot", "save", file)
	e.fails(t, "coord: cluster not empty: it holds", e.eps[1], "snapshot", "restore", file)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(e.dir, "cut.db")
	if err := os.WriteFile(cut, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	e.fails(t, cut+" is not a complete backup written by snapshot save", e.eps[1], "snapshot", "restore", cut)

	fresh := "--endpoints=http://" + e.single(t, "fresh").Client
	out := e.ctl(t, fresh, "snapshot", "restore", file)
	m := regexp.MustCompile(`^Restored (\d+) keys from ` + regexp.QuoteMeta(file) + ` \((\d+) keys attached to leases skipped\)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("snapshot restore: %q", out)
	}
	if out := e.ctl(t, fresh, "get", "/e2e/k"); out != "/e2e/k\nv3\n" {
		t.Fatalf("get of a restored key: %q", out)
	}
	if out := e.ctl(t, fresh, "ls", "/e2e/ls"); out != "a\na/\nb/\n" {
		t.Fatalf("ls of restored keys: %q", out)
	}
	if out := e.ctl(t, fresh, "get", "/e2e/restore/leased"); out != "" {
		t.Fatalf("a key attached to a lease was restored: %q", out)
	}
	e.fails(t, "coord: cluster not empty", fresh, "snapshot", "restore", file)

	// The member program's --restore loads it on the first start.
	r := e.single(t, "restored", "--restore", file)
	if err := contains(r.Log, "member restored "+m[1]+" keys from "+file+" ("+m[2]+" attached to leases skipped)\n"); err != nil {
		t.Fatal(err)
	}
	if out := e.ctl(t, "--endpoints=http://"+r.Client, "get", "/e2e/ls/", "--prefix", "--keys-only"); out != "/e2e/ls/a\n/e2e/ls/a/x\n/e2e/ls/b/c\n/e2e/ls/b/d\n" {
		t.Fatalf("keys of the member started with --restore: %q", out)
	}
}

// testNoSpaceAlarm runs the README's quota session against a member
// started with a 16 KiB quota: puts until refused, the NOSPACE alarm
// listed, then delete, compact, disarm and a put that goes in.
func (e *e2eCluster) testNoSpaceAlarm(t *testing.T) {
	ep := "--endpoints=http://" + e.single(t, "quota", "--quota-backend-bytes", "16384").Client
	value := strings.Repeat("x", 900)
	refused := false
	for i := 0; i < 40 && !refused; i++ {
		code, _, errOut := runBinary(t, e.coordctl, ep, "put", fmt.Sprintf("/jobs/%d", i), value)
		switch {
		case code == 0:
		case code == 1 && strings.Contains(errOut, "no space: shard 0 holds"):
			refused = true
		default:
			t.Fatalf("put %d: exit %d, %q", i, code, errOut)
		}
	}
	if !refused {
		t.Fatal("no put refused after 36 KiB with a 16 KiB quota")
	}
	if out := e.ctl(t, ep, "alarm", "list"); out != "shard:0 alarm:NOSPACE\n" {
		t.Fatalf("alarm list: %q", out)
	}
	e.fails(t, "no space", ep, "put", "/jobs/more", "x")
	e.ctl(t, ep, "del", "/jobs/", "--prefix")
	var g struct {
		Header struct {
			Revision int64 `json:"revision"`
		} `json:"header"`
	}
	if err := json.Unmarshal([]byte(e.ctl(t, ep, "get", "/jobs/", "--prefix", "-w", "json")), &g); err != nil || g.Header.Revision == 0 {
		t.Fatalf("get -w json: %v", err)
	}
	e.ctl(t, ep, "compact", strconv.FormatInt(g.Header.Revision, 10))
	if out := e.ctl(t, ep, "alarm", "disarm"); out != "OK\n" {
		t.Fatalf("alarm disarm: %q", out)
	}
	e.ctl(t, ep, "put", "/jobs/again", "ok")
	if out := e.ctl(t, ep, "alarm", "list"); out != "" {
		t.Fatalf("alarm list after the disarm: %q", out)
	}
}
