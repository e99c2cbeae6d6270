package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coordkit/coordkit/internal/proctest"
)

// e2eWait bounds every wait for a state in the end-to-end test, and every
// run of the coordctl binary.
const e2eWait = 30 * time.Second

// TestEndToEnd builds cmd/coordkit and coordctl, starts three member
// processes on loopback, and drives them with the coordctl binary, as an
// operator would. The subtests at its end share the cluster.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and starts member processes; skipped with -short")
	}
	began := time.Now()
	step := func(what string) { t.Logf("%5.1fs %s", time.Since(began).Seconds(), what) }
	e := startE2E(t)
	step("built member and coordctl; the three members are healthy")
	names, peers, eps := e.names, e.peers, e.eps
	coordctl, dir := e.coordctl, e.dir
	ctl := func(args ...string) string { t.Helper(); return e.ctl(t, args...) }
	await := func(what string, f func() error) { t.Helper(); e.await(t, what, f) }

	step("member list -w table")
	header := regexp.MustCompile(`^\| +ID +\| NAME \| +PEER ADDRS +\| ROLE  \| LEADS \| REACHABLE \|$`)
	await("member list shows three reachable voters, one of them leading shard 0", func() error {
		out := ctl(eps[1], "member", "list", "-w", "table")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 7 || !header.MatchString(lines[1]) || lines[0] != lines[2] || lines[0] != lines[6] {
			return fmt.Errorf("not a table of three members:\n%s", out)
		}
		leaders := 0
		for i, n := range names {
			row := regexp.MustCompile(`^\| \d+ +\| ` + n + `   \| ` + regexp.QuoteMeta(peers[i]) + ` +\| voter \| (0|-) +\| true      \|$`)
			var m []string
			for _, l := range lines[3:6] {
				if m = row.FindStringSubmatch(l); m != nil {
					break
				}
			}
			if m == nil {
				return fmt.Errorf("no row for %s:\n%s", n, out)
			}
			if m[1] == "0" {
				leaders++
			}
		}
		if leaders != 1 {
			return fmt.Errorf("%d members lead shard 0:\n%s", leaders, out)
		}
		return nil
	})

	step("put and get through different endpoints")
	if out := ctl(eps[0], "put", "/e2e/k", "v1"); out != "OK\n" {
		t.Fatalf("put: %q", out)
	}
	for _, ep := range eps[1:] {
		if out := ctl(ep, "get", "/e2e/k"); out != "/e2e/k\nv1\n" {
			t.Fatalf("get through %s: %q", ep, out)
		}
	}
	ctl(eps[0], "put", "/e2e/k", "v2")
	if out := ctl(eps[2], "get", "/e2e/", "--prefix", "--keys-only"); out != "/e2e/k\n" {
		t.Fatalf("get --keys-only: %q", out)
	}
	if out := ctl(eps[1], "get", "/e2e/", "--prefix", "--count-only"); out != "1\n" {
		t.Fatalf("get --count-only: %q", out)
	}
	var first struct {
		KVs []struct {
			CreateRevision int64 `json:"create_revision"`
		} `json:"kvs"`
	}
	if err := json.Unmarshal([]byte(ctl(eps[1], "get", "/e2e/k", "-w", "json")), &first); err != nil || len(first.KVs) != 1 {
		t.Fatalf("get -w json: %v", err)
	}
	if out := ctl(eps[1], "get", "/e2e/k", "--rev", strconv.FormatInt(first.KVs[0].CreateRevision, 10)); out != "/e2e/k\nv1\n" {
		t.Fatalf("get --rev at the key's creation: %q", out)
	}
	step("txn from stdin, as etcdctl's")
	if code, out, errOut := runBinaryIn(t, coordctl, "value(\"/e2e/k\") = \"v2\"\n\nput /e2e/k v3\n\nput /e2e/k nope\n\n", eps[2], "txn"); code != 0 || out != "SUCCESS\n\nOK\n" {
		t.Fatalf("txn: %d %q %q", code, out, errOut)
	}
	if out := ctl(eps[0], "get", "/e2e/k"); out != "/e2e/k\nv3\n" {
		t.Fatalf("get after txn: %q", out)
	}

	step("lease grant, put --lease, lease timetolive --keys, through three endpoints")
	out := ctl(eps[1], "lease", "grant", "60")
	m := regexp.MustCompile(`^lease ([0-9a-f]+) granted with TTL\(60s\)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("lease grant: %q", out)
	}
	ctl(eps[0], "put", "/e2e/leased", "x", "--lease", m[1])
	out = ctl(eps[2], "lease", "timetolive", m[1], "--keys")
	if !regexp.MustCompile(`^lease ` + m[1] + ` granted with TTL\(60s\), remaining\((60|59|58|57)s\), attached keys\(\[/e2e/leased\]\)\n$`).MatchString(out) {
		t.Fatalf("lease timetolive: %q", out)
	}

	step("watch through m2, with SIGINT to end it")
	watch := e.start(t, "watch", eps[1], "watch", "/e2e/w", "-w", "json")
	await("the watch is created", func() error { return contains(watch.Log, `"created":true`) })
	ctl(eps[2], "put", "/e2e/w", "seen")
	await("the watch prints the put", func() error { return contains(watch.Log, `"value":"c2Vlbg=="`) })
	if err := watch.Signal(syscall.SIGINT, e2eWait); err != nil {
		t.Fatalf("watch after SIGINT: %v", err)
	}

	step("snapshot save through m3")
	file := filepath.Join(dir, "backup.db")
	if out := ctl(eps[2], "snapshot", "save", file); out != "Snapshot saved at "+file+"\n" {
		t.Fatalf("snapshot save: %q", out)
	}
	if b, err := os.ReadFile(file); err != nil || !bytes.Contains(b, []byte(`"coordkit-backup"`)) || !bytes.Contains(b, []byte(`"sha256":`)) {
		t.Fatalf("backup file: %v\n%.300s", err, b)
	}

	step("three lock processes at once, one per endpoint")
	record := filepath.Join(dir, "record")
	script := `echo "start $$ $COORD_LOCK_FENCE" >> "$RECORD"; sleep 0.3; echo "end $$" >> "$RECORD"`
	var wg sync.WaitGroup
	results := make([]string, len(eps))
	for i, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(coordctl, ep, "lock", "e2e-lock", "--", "sh", "-c", script)
			cmd.Env = append(os.Environ(), "RECORD="+record)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				results[i] = err.Error()
				return
			}
			timer := time.AfterFunc(e2eWait, func() { cmd.Process.Kill() })
			defer timer.Stop()
			if err := cmd.Wait(); err != nil || stdout.Len()+stderr.Len() > 0 {
				results[i] = fmt.Sprintf("%v: stdout %q, stderr %q", err, stdout.String(), stderr.String())
			}
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r != "" {
			t.Errorf("coordctl %s lock: %s", eps[i], r)
		}
	}
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("record of the holds:\n%s", b)
	checkHolds(t, string(b), len(eps))

	step("a lock whose coordctl is killed is free at once, not after its TTL")
	holder := e.start(t, "holder", eps[0], "lock", "e2e-kill", "--ttl", "60")
	await("the holder prints the key and fence", func() error {
		if b, err := os.ReadFile(holder.Log); err != nil || !regexp.MustCompile(`^e2e-kill/\S+\n\d+\n$`).Match(b) {
			return fmt.Errorf("holder's output %q (%v)", b, err)
		}
		return nil
	})
	holder.Kill()
	if out := ctl(eps[1], "lock", "e2e-kill", "--wait", "10s", "--", "echo", "taken"); out != "taken\n" {
		t.Fatalf("lock after the holder was killed: %q", out)
	}

	step("a command's exit status passes through lock")
	if code, out, errOut := runBinary(t, coordctl, eps[0], "lock", "e2e-lock", "--", "sh", "-c", "exit 7"); code != 7 || out != "" || errOut != "" {
		t.Fatalf("lock -- sh -c 'exit 7': exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	step("operator commands, one subtest each")
	t.Run("ls", e.testLs)
	t.Run("move-leader", e.testMoveLeader)
	t.Run("svc", e.testSvc)
	t.Run("topic", e.testTopic)
	t.Run("snapshot restore", e.testSnapshotRestore)
	t.Run("check hash", e.testCheckHash)
	t.Run("alarm", e.testNoSpaceAlarm)
	step("done")
}

// e2eCluster is TestEndToEnd's cluster: three member processes founded
// together, and the coordctl binary.
type e2eCluster struct {
	dir, member, coordctl string
	names, peers, clients []string
	eps                   []string // "--endpoints=http://CLIENT", for each member
	all                   string   // "--endpoints=" the three clients
	members               []*proctest.Proc
	procs                 []*proctest.Proc // coordctl's, killed at the end
}

// startE2E builds the binaries and starts the three members, and returns
// once every endpoint is healthy.
func startE2E(t *testing.T) *e2eCluster {
	t.Helper()
	e := &e2eCluster{dir: t.TempDir()}
	bins := proctest.Build(t, e.dir, "github.com/coordkit/coordkit/cmd/coordkit", "github.com/coordkit/coordkit/cmd/coordctl")
	e.member, e.coordctl = bins[0], bins[1]
	t.Cleanup(func() {
		for _, p := range e.procs {
			p.Kill()
		}
		if t.Failed() {
			for _, p := range e.procs {
				lines, err := p.Tail(40)
				if err != nil {
					lines = []string{err.Error()}
				}
				t.Logf("--- last lines of %s (%s):\n%s", p.Name, p.Log, strings.Join(lines, "\n"))
			}
		}
	})
	ms := proctest.Founders(t, e.member, e.dir, "coordctl-e2e", 3, "--heartbeat-interval", "50", "--election-timeout", "1000",
		"--pubsub-retention-interval", "200ms")
	var clients []string
	for _, m := range ms {
		m.Start(t)
		e.members = append(e.members, m.Proc)
		e.names, e.peers, clients = append(e.names, m.Name), append(e.peers, m.Peer), append(clients, m.Client)
		e.eps = append(e.eps, "--endpoints=http://"+m.Client)
	}
	e.clients = clients
	e.all = "--endpoints=" + strings.Join(clients, ",")
	e.await(t, "every endpoint healthy", func() error {
		if code, out, errOut := runBinary(t, e.coordctl, e.all, "endpoint", "health"); code != 0 {
			return fmt.Errorf("exit %d: %s%s", code, out, errOut)
		}
		return nil
	})
	return e
}

// ctl runs the coordctl binary, expecting status 0, and returns its
// standard output.
func (e *e2eCluster) ctl(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runBinary(t, e.coordctl, args...)
	if code != 0 {
		t.Fatalf("coordctl %q: exit %d, stderr %q, stdout %q", args, code, errOut, out)
	}
	return out
}

// fails runs the coordctl binary, expecting status 1 and an error naming
// want.
func (e *e2eCluster) fails(t *testing.T, want string, args ...string) {
	t.Helper()
	code, out, errOut := runBinary(t, e.coordctl, args...)
	if code != 1 || !strings.HasPrefix(errOut, "Error: ") || !strings.Contains(errOut, want) {
		t.Fatalf("coordctl %q: exit %d, stderr %q (want it to contain %q), stdout %q", args, code, errOut, want, out)
	}
}

// await polls f, giving up early if a member exits.
func (e *e2eCluster) await(t *testing.T, what string, f func() error) {
	t.Helper()
	proctest.Eventually(t, e2eWait, 20*time.Millisecond, what, func() error {
		for _, p := range e.members {
			if !p.Running() {
				t.Fatalf("%s: %s exited: %v", what, p.Name, p.ExitErr())
			}
		}
		return f()
	})
}

// start starts a coordctl process that runs until interrupted, its output
// in the file NAME.log.
func (e *e2eCluster) start(t *testing.T, name string, args ...string) *proctest.Proc {
	t.Helper()
	p := startProc(t, e.dir, name, e.coordctl, args...)
	e.procs = append(e.procs, p)
	return p
}

// checkHolds checks a record of lock holds: n pairs of "start PID FENCE"
// and "end PID" lines, never overlapping, with fences increasing.
func checkHolds(t *testing.T, record string, n int) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(record, "\n"), "\n")
	if len(lines) != 2*n {
		t.Fatalf("record of %d holds has %d lines, want %d:\n%s", n, len(lines), 2*n, record)
	}
	last := int64(-1)
	pids := map[string]bool{}
	for i := 0; i < len(lines); i += 2 {
		start, end := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(start) != 3 || start[0] != "start" || len(end) != 2 || end[0] != "end" || end[1] != start[1] {
			t.Fatalf("holds overlap or are malformed at line %d:\n%s", i+1, record)
		}
		fence, err := strconv.ParseInt(start[2], 10, 64)
		if err != nil || fence <= last {
			t.Fatalf("fence %q at line %d is not above the previous one, %d:\n%s", start[2], i+1, last, record)
		}
		last = fence
		pids[start[1]] = true
	}
	if len(pids) != n {
		t.Fatalf("%d distinct commands held the lock, want %d:\n%s", len(pids), n, record)
	}
}

// runBinary runs a binary to its end, within e2eWait.
func runBinary(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runBinaryIn(t, bin, "", args...)
}

// runBinaryIn is runBinary with stdin.
func runBinaryIn(t *testing.T, bin, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %q: no exit within %v; stdout %q, stderr %q", bin, args, e2eWait, out.String(), errOut.String())
	}
	return code, out.String(), errOut.String()
}

// contains reports whether the file at path contains s, as an error.
func contains(path, s string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), s) {
		return fmt.Errorf("%s does not contain %q: %q", path, s, b)
	}
	return nil
}

// startProc starts bin with args, its stdout and stderr in dir/NAME.log.
func startProc(t *testing.T, dir, name, bin string, args ...string) *proctest.Proc {
	t.Helper()
	p := &proctest.Proc{Name: name, Bin: bin, Args: args, Log: filepath.Join(dir, name+".log")}
	p.Start(t)
	return p
}
