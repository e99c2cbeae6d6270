package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/httpapi"
	"github.com/coordkit/coordkit/internal/proctest"
)

// waitFor bounds every wait for a state in these tests.
const waitFor = 20 * time.Second

// background is an in-process run of coordctl that runs until interrupted,
// with signals sent by the test.
type background struct {
	t        *testing.T
	args     []string
	out, err proctest.Buffer
	sigs     chan os.Signal
	done     chan struct{}
	code     int
}

func startCtl(t *testing.T, args ...string) *background {
	t.Helper()
	b := &background{t: t, args: args, sigs: make(chan os.Signal, 4), done: make(chan struct{})}
	signals := func() (<-chan os.Signal, func()) { return b.sigs, func() {} }
	go func() {
		defer close(b.done)
		b.code = run(args, env{stdout: &b.out, stderr: &b.err, signals: signals})
	}()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			b.sigs <- syscall.SIGINT
			<-b.done
		}
	})
	return b
}

// waitOutput polls until the standard output matches re.
func (b *background) waitOutput(re string) {
	b.t.Helper()
	r := regexp.MustCompile(re)
	proctest.Eventually(b.t, waitFor, 20*time.Millisecond, fmt.Sprintf("coordctl %q prints %q", b.args, re), func() error {
		if out := b.out.String(); !r.MatchString(out) {
			select {
			case <-b.done:
				b.t.Fatalf("coordctl %q exited with %d before printing %q: stdout %q, stderr %q", b.args, b.code, re, out, b.err.String())
			default:
			}
			return fmt.Errorf("stdout %q, stderr %q", out, b.err.String())
		}
		return nil
	})
}

// wait waits for the exit, which must have the given status.
func (b *background) wait(code int) (stdout, stderr string) {
	b.t.Helper()
	select {
	case <-b.done:
	case <-time.After(waitFor):
		b.t.Fatalf("coordctl %q did not exit within %v: stdout %q, stderr %q", b.args, waitFor, b.out.String(), b.err.String())
	}
	if b.code != code {
		b.t.Fatalf("coordctl %q: exit %d, want %d; stdout %q, stderr %q", b.args, b.code, code, b.out.String(), b.err.String())
	}
	return b.out.String(), b.err.String()
}

// interrupt sends sig and waits for an exit with status 0.
func (b *background) interrupt(sig os.Signal) (stdout, stderr string) {
	b.t.Helper()
	b.sigs <- sig
	return b.wait(0)
}

func newServer(t *testing.T) (c *coordtest.Cluster, ep string) {
	c = coordtest.New(t, 1)
	srv := httptest.NewServer(httpapi.New(c.Node(0)))
	t.Cleanup(srv.Close)
	return c, "--endpoints=" + srv.URL
}

func TestLease(t *testing.T) {
	_, ep := newServer(t)
	out := ok(t, ep, "lease", "grant", "30")
	m := regexp.MustCompile(`^lease ([0-9a-f]+) granted with TTL\(30s\)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("lease grant: %q", out)
	}
	id := m[1]
	ok(t, ep, "put", "/l/a", "1", "--lease", id)
	ok(t, ep, "put", "/l/b", "2", "--lease", "0x"+id)
	if out := ok(t, ep, "get", "/l/a", "-w", "table"); !strings.Contains(out, "| "+id+" |") {
		t.Fatalf("get -w table of a key with a lease:\n%s", out)
	}
	out = ok(t, ep, "lease", "timetolive", id, "--keys")
	if !regexp.MustCompile(`^lease ` + id + ` granted with TTL\(30s\), remaining\((30|29)s\), attached keys\(\[/l/a /l/b\]\)\n$`).MatchString(out) {
		t.Fatalf("lease timetolive --keys: %q", out)
	}
	if out := ok(t, ep, "lease", "timetolive", id); !regexp.MustCompile(`^lease ` + id + ` granted with TTL\(30s\), remaining\(\d+s\)\n$`).MatchString(out) {
		t.Fatalf("lease timetolive: %q", out)
	}
	out = ok(t, ep, "lease", "timetolive", id, "--keys", "-w", "table")
	if !regexp.MustCompile(`\| +ID +\| TTL \| REMAINING \| +KEYS +\|`).MatchString(out) || !strings.Contains(out, "| "+id+" | 30s | ") || !strings.Contains(out, "| /l/a, /l/b |") {
		t.Fatalf("lease timetolive -w table:\n%s", out)
	}
	var ttl struct {
		ID           int64 `json:"id"`
		GrantedTTLMs int64 `json:"granted_ttl_ms"`
	}
	out = ok(t, ep, "lease", "timetolive", id, "-w", "json")
	if err := json.Unmarshal([]byte(out), &ttl); err != nil || strconv.FormatInt(ttl.ID, 16) != id || ttl.GrantedTTLMs != 30000 {
		t.Fatalf("lease timetolive -w json: %q %v", out, err)
	}
	if out := ok(t, ep, "lease", "list"); out != "found 1 leases\n"+id+"\n" {
		t.Fatalf("lease list: %q", out)
	}
	if out := ok(t, ep, "lease", "list", "-w", "table"); !strings.Contains(out, "| "+id+" | 30s |") {
		t.Fatalf("lease list -w table:\n%s", out)
	}
	if out := ok(t, ep, "lease", "keep-alive", "--once", id); out != "lease "+id+" keepalived with TTL(30s)\n" {
		t.Fatalf("lease keep-alive --once: %q", out)
	}
	ka := startCtl(t, ep, "lease", "keep-alive", id)
	ka.waitOutput(`^lease ` + id + ` keepalived with TTL\(30s\)\n`)
	if _, errOut := ka.interrupt(syscall.SIGINT); errOut != "" {
		t.Fatalf("lease keep-alive: stderr %q", errOut)
	}
	if out := ok(t, ep, "lease", "revoke", id); out != "lease "+id+" revoked\n" {
		t.Fatalf("lease revoke: %q", out)
	}
	if out := ok(t, ep, "get", "/l/", "--prefix"); out != "" {
		t.Fatalf("keys of a revoked lease: %q", out)
	}
	fails(t, "lease "+id+" not found (expired or revoked)", ep, "lease", "timetolive", id)
	fails(t, "lease "+id+" not found", ep, "lease", "keep-alive", id)
	fails(t, "lease "+id+" not found", ep, "lease", "revoke", id)
	fails(t, "bad lease ID", ep, "lease", "revoke", "xyz")
	fails(t, "bad TTL", ep, "lease", "grant", "0")
	fails(t, "--lease: bad lease ID", ep, "put", "k", "v", "--lease", "-1")
	fails(t, "lease needs a subcommand", ep, "lease")
}

func TestWatch(t *testing.T) {
	_, ep := newServer(t)
	var put struct {
		Header struct{ Revision int64 }
	}
	if err := json.Unmarshal([]byte(ok(t, ep, "put", "/w/a", "1", "-w", "json")), &put); err != nil {
		t.Fatal(err)
	}
	rev := strconv.FormatInt(put.Header.Revision, 10)
	// From the revision of the first put: no race with the watch's start.
	w := startCtl(t, ep, "watch", "/w/", "--prefix", "--prev-kv", "--rev", rev)
	wj := startCtl(t, ep, "watch", "/w/a", "-w", "json")
	wj.waitOutput(`"created":true`)
	ok(t, ep, "put", "/w/a", "2")
	ok(t, ep, "del", "/w/a")
	ok(t, ep, "put", "/other", "x")
	ok(t, ep, "put", "/w/b", "two words")
	want := "PUT\n/w/a\n1\n" + "PUT\n/w/a\n1\n/w/a\n2\n" + "DELETE\n/w/a\n2\n/w/a\n\n" + "PUT\n/w/b\ntwo words\n"
	w.waitOutput("^" + regexp.QuoteMeta(want) + "$")
	w.interrupt(syscall.SIGTERM)

	wj.waitOutput(`"type":"DELETE"`)
	out, _ := wj.interrupt(syscall.SIGINT)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var types []string
	for _, l := range lines[1:] {
		var line watchLine
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("watch -w json line %q: %v", l, err)
		}
		for _, ev := range line.Events {
			if string(ev.KV.Key) != "/w/a" {
				t.Fatalf("watch -w json: event for key %q", ev.KV.Key)
			}
			types = append(types, ev.Type)
		}
	}
	// The two events may come in one line or in two.
	if !strings.Contains(lines[0], `"created":true`) || fmt.Sprint(types) != "[PUT DELETE]" {
		t.Fatalf("watch -w json:\n%s", out)
	}

	// A compacted start revision: the error says where to resume.
	ok(t, ep, "put", "/w/c", "3")
	if out := ok(t, ep, "compact", rev); out != "compacted revision "+rev+"\n" {
		t.Fatalf("compact: %q", out)
	}
	fails(t, "resume with --rev "+rev, ep, "watch", "/w/", "--prefix", "--rev", "1")
	fails(t, "--rev: -1 is negative", ep, "watch", "/w/", "--rev", "-1")
	fails(t, "bad revision", ep, "compact", "x")
}

func TestLock(t *testing.T) {
	c, ep := newServer(t)
	holder := startCtl(t, ep, "lock", "L")
	holder.waitOutput(`^L/\S+\n\d+\n$`)
	first := strings.Fields(holder.out.String())
	fence, _ := strconv.ParseInt(first[1], 10, 64)
	fails(t, "lock still held", ep, "lock", "L", "--wait", "100ms", "--", "true")
	// A waiter gets the lock once the holder lets go.
	dir := t.TempDir()
	env := filepath.Join(dir, "env")
	waiter := startCtl(t, ep, "lock", "L", "--ttl", "5", "--", "sh", "-c", `echo "$COORD_LOCK_NAME $COORD_LOCK_KEY $COORD_LOCK_FENCE" > `+env)
	holder.interrupt(syscall.SIGINT)
	if out, errOut := waiter.wait(0); out != "" || errOut != "" {
		t.Fatalf("lock with a command: stdout %q, stderr %q", out, errOut)
	}
	b, err := os.ReadFile(env)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(b))
	if len(got) != 3 || got[0] != "L" || !strings.HasPrefix(got[1], "L/") || got[1] == first[0] {
		t.Fatalf("environment of the command: %q, the first holder's key %q", b, first[0])
	}
	if f, _ := strconv.ParseInt(got[2], 10, 64); f <= fence {
		t.Fatalf("fence of the second holder %d, not above the first's %d", f, fence)
	}

	// The command's status is passed through, its output too.
	code, out, errOut := ctl(t, ep, "lock", "L", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	if code != 3 || out != "out\n" || errOut != "err\n" {
		t.Fatalf("lock with a failing command: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, _ := ctl(t, ep, "lock", "L", "--", "sh", "-c", "kill -TERM $$"); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("lock with a command killed by SIGTERM: exit %d, want %d", code, 128+int(syscall.SIGTERM))
	}

	// SIGTERM is passed on to the command; SIGINT is not, and coordctl
	// waits for the command anyway.
	ready := filepath.Join(dir, "ready")
	b2 := startCtl(t, ep, "lock", "L", "--", "sh", "-c", `trap "exit 9" TERM; touch `+ready+`; while :; do sleep 0.02; done`)
	proctest.Eventually(t, waitFor, 20*time.Millisecond, "the command runs", func() error { _, err := os.Stat(ready); return err })
	b2.sigs <- syscall.SIGINT
	b2.sigs <- syscall.SIGTERM
	b2.wait(9)

	// A lost lock: the command is sent SIGTERM and the status is 1.
	keyFile := filepath.Join(dir, "key")
	lost := startCtl(t, ep, "lock", "L", "--", "sh", "-c", `echo "$COORD_LOCK_KEY" > `+keyFile+`; exec sleep 60`)
	var key string
	proctest.Eventually(t, waitFor, 20*time.Millisecond, "the command writes the key", func() error {
		b, err := os.ReadFile(keyFile)
		if key = strings.TrimSpace(string(b)); key == "" {
			return fmt.Errorf("no key yet (%v)", err)
		}
		return nil
	})
	start := time.Now()
	if _, err := c.Node(0).Delete(coordtest.Context(t, waitFor), key); err != nil {
		t.Fatal(err)
	}
	_, errOut = lost.wait(1)
	if !strings.Contains(errOut, "Error: lock L lost: ") || !strings.Contains(errOut, "sending SIGTERM to sh") ||
		!strings.Contains(errOut, "Error: lock L was lost while sh ran, which exited with status 143") {
		t.Fatalf("lock lost: stderr %q", errOut)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("lock lost: exit %v after the key's deletion", d)
	}

	// Interrupted while waiting: the command never runs.
	holder = startCtl(t, ep, "lock", "L")
	holder.waitOutput(`\n`)
	never := filepath.Join(dir, "never")
	waiter = startCtl(t, ep, "lock", "L", "--", "touch", never)
	waiter.sigs <- syscall.SIGINT
	if _, errOut := waiter.wait(1); !strings.Contains(errOut, "interrupted before lock L was acquired") {
		t.Fatalf("lock interrupted while waiting: stderr %q", errOut)
	}
	if _, err := os.Stat(never); err == nil {
		t.Fatal("the command of an interrupted wait ran")
	}
	holder.interrupt(syscall.SIGTERM)
	out = ok(t, ep, "lock", "L", "-w", "json", "--wait", "5s", "--", "true")
	if out != "" {
		t.Fatalf("lock with a command, -w json: %q", out)
	}
	holder = startCtl(t, ep, "lock", "L", "-w", "json")
	holder.waitOutput(`^\{"lock":\{"name":"L","key":"[A-Za-z0-9+/=]+","fence":\d+,"lease":\d+\}\}\n$`)
	holder.interrupt(syscall.SIGINT)

	fails(t, "no such file or directory", ep, "lock", "L", "--", filepath.Join(dir, "no-such-command"))
	fails(t, "a COMMAND with flags goes after --", ep, "lock", "L", "ls", "-l")
	fails(t, "takes at least 1 argument(s), got 0", ep, "lock")
	fails(t, "--ttl: -1 seconds is out of range", ep, "lock", "L", "--ttl", "-1")
}

func TestElect(t *testing.T) {
	c, ep := newServer(t)
	obs := startCtl(t, ep, "elect", "--listen", "E")
	leader := startCtl(t, ep, "elect", "E", "v1")
	leader.waitOutput(`^E/\S+\nv1\n$`)
	key1 := strings.Fields(leader.out.String())[0]
	obs.waitOutput(`(?m)^` + regexp.QuoteMeta(key1) + `\nv1\n$`)
	second := startCtl(t, ep, "elect", "E", "v2", "--ttl", "5", "-w", "json")
	leader.interrupt(syscall.SIGINT)
	second.waitOutput(`^\{"leader":\{"name":"E","key":"[^"]+","value":"djI=","rev":\d+,"lease":\d+\}\}\n$`)
	obs.waitOutput(`\nv2\n$`)
	out, _ := obs.interrupt(syscall.SIGINT)
	if !strings.HasPrefix(out, key1+"\nv1\n") || strings.Count(out, "\n") != 4 {
		t.Fatalf("elect --listen: %q", out)
	}
	second.interrupt(syscall.SIGTERM)
	if out := ok(t, ep, "get", "E/", "--prefix"); out != "" {
		t.Fatalf("keys left after every candidate resigned: %q", out)
	}

	// The leadership is lost when its key goes.
	leader = startCtl(t, ep, "elect", "E", "v3")
	leader.waitOutput(`\nv3\n$`)
	key := strings.Fields(leader.out.String())[0]
	if _, err := c.Node(0).Delete(coordtest.Context(t, waitFor), key); err != nil {
		t.Fatal(err)
	}
	if _, errOut := leader.wait(1); !strings.HasPrefix(errOut, "Error: leadership of E lost: ") {
		t.Fatalf("elect, key deleted: stderr %q", errOut)
	}

	fails(t, "elect takes 2 arguments", ep, "elect", "E")
	fails(t, "elect --listen takes 1 argument", ep, "elect", "--listen", "E", "v")
}

func TestSnapshotSave(t *testing.T) {
	_, ep := newServer(t)
	ok(t, ep, "put", "/s/a", "1")
	file := filepath.Join(t.TempDir(), "backup")
	if out := ok(t, ep, "snapshot", "save", file); out != "Snapshot saved at "+file+"\n" {
		t.Fatalf("snapshot save: %q", out)
	}
	b, err := os.ReadFile(file)
	if err != nil || !bytes.Contains(b, []byte(`"coordkit-backup"`)) {
		t.Fatalf("backup: %q %v", b, err)
	}
	if _, err := os.Stat(file + ".part"); !os.IsNotExist(err) {
		t.Fatalf("FILE.part left behind: %v", err)
	}
	// Cut short, or altered, the backup fails the check.
	cut := filepath.Join(t.TempDir(), "cut")
	lines := bytes.SplitAfter(b, []byte("\n"))
	os.WriteFile(cut, bytes.Join(lines[:len(lines)-2], nil), 0o600)
	if _, err := checkBackup(cut); err == nil || !strings.Contains(err.Error(), "no SHA-256 trailer") {
		t.Fatalf("checkBackup of a cut backup: %v", err)
	}
	os.WriteFile(cut, bytes.Replace(b, []byte(`coordkit-backup`), []byte(`coordkit-backuq`), 1), 0o600)
	if _, err := checkBackup(cut); err == nil || !strings.Contains(err.Error(), "but the trailer says") {
		t.Fatalf("checkBackup of an altered backup: %v", err)
	}
	fails(t, "snapshot needs a subcommand: save or restore", ep, "snapshot")
	fails(t, "no such file or directory", ep, "snapshot", "save", filepath.Join(t.TempDir(), "no", "dir"))
}
