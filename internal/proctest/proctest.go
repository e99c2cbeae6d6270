// Package proctest helps tests that run programs of this module as
// processes: it builds them, picks loopback addresses for them, starts,
// stops and kills them, and polls for a state with a deadline.
//
// It is used only by tests.
package proctest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coordkit/coordkit/internal/freeport"
)

// MemberProgram is the import path of the member program, a module of its own
// (it serves etcd's API, whose dependencies stay out of this module).
const MemberProgram = "github.com/coordkit/coordkit/cmd/coordkit"

// Build builds the main packages pkgs, given by import path, with
// "go build -o dir/" and returns the paths of their binaries in dir, in the
// order of pkgs. A package of this module is built from the test's working
// directory (the directory of the package under test, so inside this
// module); a program that is a module of its own under this one (MemberProgram)
// is built in its directory, with its own go.mod, which points back here.
// BuildTags passes build flags as well. It blocks until the builds end and
// fails the test if the go command is not found or a build fails.
func Build(t testing.TB, dir string, pkgs ...string) []string {
	t.Helper()
	return BuildTags(t, dir, nil, pkgs...)
}

// BuildTags is Build with flags for go build, such as "-tags", "x".
func BuildTags(t testing.TB, dir string, flags []string, pkgs ...string) []string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not found: %v", err)
	}
	out := dir + string(filepath.Separator)
	var here []string
	for _, pkg := range pkgs {
		modDir, own := nestedModule(t, goTool, pkg)
		if !own {
			here = append(here, pkg)
			continue
		}
		cmd := exec.Command(goTool, append(append([]string{"build", "-o", out}, flags...), ".")...)
		cmd.Dir = modDir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s (in %s): %v\n%s", pkg, modDir, err, b)
		}
	}
	if len(here) > 0 {
		args := append(append([]string{"build", "-o", out}, flags...), here...)
		if b, err := exec.Command(goTool, args...).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", strings.Join(here, " "), err, b)
		}
	}
	bins := make([]string, len(pkgs))
	for i, pkg := range pkgs {
		bins[i] = filepath.Join(dir, path.Base(pkg))
	}
	return bins
}

// nestedModule reports whether pkg is the root of a module of its own
// under this module's directory, and where.
func nestedModule(t testing.TB, goTool, pkg string) (string, bool) {
	t.Helper()
	const mod = "github.com/coordkit/coordkit/"
	rel, ok := strings.CutPrefix(pkg, mod)
	if !ok {
		return "", false
	}
	gomod, err := exec.Command(goTool, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	d := filepath.Join(filepath.Dir(strings.TrimSpace(string(gomod))), filepath.FromSlash(rel))
	if _, err := os.Stat(filepath.Join(d, "go.mod")); err != nil {
		return "", false
	}
	return d, true
}

// FreeAddr returns a loopback address, "127.0.0.1:PORT", whose port was free
// a moment ago and not handed out before in this process (see
// internal/freeport). It fails the test if no port can be had.
func FreeAddr(t testing.TB) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// SecretFile writes a random cluster secret into a new file under dir and
// returns the file's path, for coordkit --cluster-secret-file.
func SecretFile(t testing.TB, dir string) string {
	t.Helper()
	f := filepath.Join(dir, "cluster-secret")
	if err := os.WriteFile(f, []byte(rand.Text()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// Eventually calls f every interval until it returns nil, and fails the
// test with f's last error once timeout has passed. It blocks until then;
// f runs on the caller's goroutine, so it may fail the test itself.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(interval)
	}
}

// Holds adapts a condition to Eventually: an error until cond holds.
func Holds(cond func() bool) func() error {
	return func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}
}

var errNotYet = errors.New("the condition does not hold yet")

// ExitStatus describes the result of a process's exit, an error of
// exec.Cmd.Wait: "status 0" for nil, else the error's text.
func ExitStatus(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// LastLines returns the last n lines of b, without their line ends. A final
// line end does not start an empty line.
func LastLines(b []byte, n int) []string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return lines[max(0, len(lines)-n):]
}

// Proc is a process of a test, which may be started again after it has
// exited. Its stdout and stderr are appended to one log file across starts.
// Set the exported fields before Start; Args may change between starts.
// Its methods may be called from several goroutines.
type Proc struct {
	Name string   // names the process in messages
	Bin  string   // the program
	Args []string // its arguments
	Log  string   // path of the log file, created if need be
	// Banner makes Start write a line "=== start N: BIN ARGS" to the log
	// before each start, N counting the starts from 0.
	Banner bool

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	err    error         // cmd.Wait's, once done is closed
	starts int
}

// Start starts the process, which must not be running, and returns without
// waiting for it. It fails the test if the log cannot be opened or the
// process cannot be started.
func (p *Proc) Start(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if p.Banner {
		fmt.Fprintf(f, "=== start %d: %s %s\n", p.starts, p.Bin, strings.Join(p.Args, " "))
	}
	p.starts++
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
}

// current returns the last start's command and exit channel, nil if the
// process was never started.
func (p *Proc) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// Running reports whether the process is started and has not exited. It
// does not block.
func (p *Proc) Running() bool {
	_, done := p.current()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// ExitErr returns the error of the last exit, exec.Cmd.Wait's (nil for
// status 0, and while the process runs or was never started). It does not
// block.
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Kill sends SIGKILL to the process if it runs, and waits for its exit. It
// does nothing if the process was never started.
func (p *Proc) Kill() {
	cmd, done := p.current()
	if done == nil {
		return
	}
	if p.Running() {
		cmd.Process.Kill()
	}
	<-done
}

// Signal sends sig to the process, which must have been started, and waits
// up to timeout for its exit. It returns the exit's error (nil for status 0)
// or the error of sending sig. If the process does not exit within timeout,
// Signal kills it and returns an error saying so.
func (p *Proc) Signal(sig os.Signal, timeout time.Duration) error {
	cmd, done := p.current()
	if err := cmd.Process.Signal(sig); err != nil {
		return err
	}
	select {
	case <-done:
		return p.ExitErr()
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s: no exit within %v of %v", p.Name, timeout, sig)
	}
}

// Eventually is the package's Eventually for a state of the process: it
// polls f every interval until it returns nil, and fails the test with f's
// last error once timeout has passed, or as soon as f has failed while the
// process is not running (never started, or exited).
func (p *Proc) Eventually(t testing.TB, timeout, interval time.Duration, what string, f func() error) {
	t.Helper()
	Eventually(t, timeout, interval, p.Name+": "+what, func() error {
		err := f()
		if err == nil || p.Running() {
			return err
		}
		t.Helper()
		if _, done := p.current(); done == nil {
			t.Fatalf("%s: %s: the process is not running; last error: %v", p.Name, what, err)
		}
		t.Fatalf("%s: %s: the process exited (%v); last error: %v", p.Name, what, ExitStatus(p.ExitErr()), err)
		return nil
	})
}

// Tail returns the last n lines of the process's log. Its error is the
// error of reading the log (one satisfying errors.Is(err, os.ErrNotExist)
// if the process was never started).
func (p *Proc) Tail(n int) ([]string, error) {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return nil, err
	}
	return LastLines(b, n), nil
}

// Buffer collects output that one goroutine writes while another reads it,
// such as a program's stdout run in the test's process. The zero value is
// ready to use; its methods may be called concurrently.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p. It never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
