package etcdv3

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	etcdctlOnce sync.Once
	etcdctlBin  string
	etcdctlErr  error
)

// etcdctlPath builds etcdctl v3.7.3 from its module (testdata/etcdctl
// requires it as a tool) once per test binary, and returns its path.
func etcdctlPath(t *testing.T) string {
	t.Helper()
	etcdctlOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			etcdctlErr = err
			return
		}
		dir, err := os.MkdirTemp("", "etcdctl-")
		if err != nil {
			etcdctlErr = err
			return
		}
		etcdctlBin = filepath.Join(dir, "etcdctl")
		cmd := exec.Command(goTool, "build", "-o", etcdctlBin, "go.etcd.io/etcd/etcdctl/v3")
		cmd.Dir = filepath.Join("testdata", "etcdctl")
		if out, err := cmd.CombinedOutput(); err != nil {
			etcdctlErr = err
			etcdctlBin = string(out)
		}
	})
	if etcdctlErr != nil {
		t.Fatalf("building etcdctl: %v\n%s", etcdctlErr, etcdctlBin)
	}
	return etcdctlBin
}

// ctl runs etcdctl against the cluster's endpoints and returns its
// output; it fails the test if etcdctl fails.
func (c *cluster) ctl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := c.ctlCmd(t, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("etcdctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (c *cluster) ctlCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	all := append([]string{"--endpoints=" + strings.Join(c.endpoints, ","), "--command-timeout=10s"}, args...)
	return exec.Command(etcdctlPath(t), all...)
}

// background starts etcdctl, and returns a reader of its output lines
// and what stops it.
func (c *cluster) background(t *testing.T, args ...string) (<-chan string, func()) {
	t.Helper()
	cmd := c.ctlCmd(t, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	t.Cleanup(stop)
	return lines, stop
}

// expect reads lines until one matches re, and fails after a while.
func expect(t *testing.T, lines <-chan string, re string) string {
	t.Helper()
	r := regexp.MustCompile(re)
	timeout := time.After(20 * time.Second)
	var seen []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before a line matching %q: %q", re, seen)
			}
			if r.MatchString(l) {
				return l
			}
			seen = append(seen, l)
		case <-timeout:
			t.Fatalf("no line matching %q within 20s: %q", re, seen)
		}
	}
}

func must(t *testing.T, out, re string) {
	t.Helper()
	if !regexp.MustCompile(re).MatchString(out) {
		t.Fatalf("output %q does not match %q", out, re)
	}
}

// TestEtcdctl runs the etcdctl binary, built from etcd's module, against a
// 3-member coordkit cluster: the etcd guide's commands, as they are.
func TestEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("builds etcdctl")
	}
	c := serve(t, 3)

	table := c.ctl(t, "", "member", "list", "-w", "table")
	t.Logf("etcdctl member list -w table:\n%s", table)
	// etcdctl 3.7 draws its tables with box-drawing characters.
	const bar = `[|│]`
	must(t, table, `(?m)^`+bar+`\s+ID\s+`+bar+`\s+STATUS\s+`+bar+`\s+NAME\s+`+bar+`\s+PEER ADDRS\s+`+bar+`\s+CLIENT ADDRS\s+`+bar+`\s+IS LEARNER\s+`+bar+`$`)
	for i := range 3 {
		must(t, table, bar+` started `+bar+` +`+regexp.QuoteMeta(c.Node(i).Name())+` `+bar+` http://127\.0\.0\.1:\d+ `+bar+`.*`+bar+` +false `+bar)
	}
	must(t, c.ctl(t, "", "endpoint", "health"), `is healthy: successfully committed proposal`)
	status := c.ctl(t, "", "endpoint", "status", "-w", "table")
	t.Logf("etcdctl endpoint status -w table:\n%s", status)
	must(t, status, `(?s)IS LEADER.*`+regexp.QuoteMeta(c.endpoints[0])+` .*`+bar+` +3\.7\.0 `+bar)

	must(t, c.ctl(t, "", "put", "foo", "bar"), `^OK\n$`)
	must(t, c.ctl(t, "", "put", "foo2", "bar2"), `^OK\n$`)
	if got := c.ctl(t, "", "get", "--prefix", "fo"); got != "foo\nbar\nfoo2\nbar2\n" {
		t.Fatalf("get --prefix: %q", got)
	}

	// watch prints every change until stopped.
	lines, stop := c.background(t, "watch", "foo")
	time.Sleep(0) // the watch is created when etcdctl connects; put until it shows
	deadline := time.Now().Add(20 * time.Second)
	got := false
	for !got && time.Now().Before(deadline) {
		c.ctl(t, "", "put", "foo", "baz")
		select {
		case l := <-lines:
			got = l == "PUT"
		case <-time.After(500 * time.Millisecond):
		}
	}
	if !got {
		t.Fatal("etcdctl watch printed no PUT")
	}
	expect(t, lines, `^foo$`)
	expect(t, lines, `^baz$`)
	stop()

	// A lease: grant, attach, keep alive once, revoke.
	grant := c.ctl(t, "", "lease", "grant", "60")
	m := regexp.MustCompile(`^lease ([0-9a-f]+) granted with TTL\(60s\)`).FindStringSubmatch(grant)
	if m == nil {
		t.Fatalf("lease grant: %q", grant)
	}
	id := m[1]
	must(t, c.ctl(t, "", "put", "--lease="+id, "leased", "v"), `^OK\n$`)
	must(t, c.ctl(t, "", "lease", "keep-alive", "--once", id), `lease `+id+` keepalived with TTL\(60\)`)
	must(t, c.ctl(t, "", "lease", "timetolive", "--keys", id), `granted with TTL\(60s\), remaining\(\d+s\), attached keys\(\[leased\]\)`)
	must(t, c.ctl(t, "", "lease", "revoke", id), `lease `+id+` revoked`)
	if got := c.ctl(t, "", "get", "leased"); got != "" {
		t.Fatalf("a revoked lease's key: %q", got)
	}

	// txn, interactive as in the etcd guide.
	txn := c.ctl(t, "value(\"foo\") = \"baz\"\n\nput foo qux\n\nput foo nope\n\n", "txn")
	must(t, txn, `^SUCCESS\n\nOK\n$`)
	if got := c.ctl(t, "", "get", "foo", "--print-value-only"); got != "qux\n" {
		t.Fatalf("after txn: %q", got)
	}

	// lock runs a command while holding the lock.
	must(t, c.ctl(t, "", "lock", "mylock", "echo", "held"), `(?m)^held$`)

	// elect campaigns and holds the leadership until stopped; elect -l
	// follows the election.
	leader, stopLeader := c.background(t, "elect", "myelection", "p1")
	expect(t, leader, `^p1$`)
	follower, stopFollower := c.background(t, "elect", "-l", "myelection")
	expect(t, follower, `^p1$`)
	stopLeader()
	stopFollower()

	// del, and compaction as etcdctl reports it.
	must(t, c.ctl(t, "", "del", "--prefix", "foo"), `^2\n$`)
	rev := regexp.MustCompile(`"revision":(\d+)`).FindStringSubmatch(c.ctl(t, "", "get", "foo", "-w", "json"))
	if rev == nil {
		t.Fatal("no revision in get -w json")
	}
	must(t, c.ctl(t, "", "compaction", rev[1]), `compacted revision `+rev[1])
	cmd := c.ctlCmd(t, "get", "foo", "--rev=2")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "required revision has been compacted") {
		t.Fatalf("get below the compaction: %v %s", err, out)
	}
}
