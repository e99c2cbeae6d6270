package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

const (
	lockUsage  = "lock NAME [--ttl SECONDS] [--wait D] [-- COMMAND [ARGS...]]"
	electUsage = "elect NAME VALUE [--ttl SECONDS] | elect --listen NAME"
)

// held is a lock or a leadership held by an open stream.
type held struct {
	s     *stream
	first json.RawMessage // the line that says it is held
	// ended receives the error with which the stream ended: lost, or the
	// connection broke. It is buffered, and closed after that.
	ended  chan error
	wg     sync.WaitGroup
	cancel context.CancelCauseFunc // of the stream's parent context
}

// acquire opens a stream that holds a resource (POST path with req) and
// waits for its first line, for as long as it takes: the server sends
// nothing until the resource is held. A signal on sigs ends the wait, with
// errInterrupted. Once held, a goroutine follows the stream to learn of its
// end.
func (c *cli) acquire(sigs <-chan os.Signal, path string, req any) (*held, error) {
	ictx, stop := untilSignal(context.Background(), sigs)
	defer stop()
	// Once the resource is held, the stream must outlive an interrupt, so
	// that it is released by an explicit (and so synchronous) call rather
	// than by the connection's end; until then, an interrupt ends it.
	sctx, cancel := context.WithCancelCause(context.Background())
	stopWatch := context.AfterFunc(ictx, func() { cancel(errInterrupted) })
	s, err := c.openStream(sctx, path, req, 0)
	var first json.RawMessage
	if err == nil {
		if first, err = s.next(); err != nil {
			err = fmt.Errorf("%s: %w", s.ep, err)
		}
	}
	if !stopWatch() {
		err = errInterrupted
	}
	if err != nil {
		if s != nil {
			s.close()
		}
		cancel(nil)
		if errors.Is(err, errInterrupted) {
			return nil, errInterrupted
		}
		return nil, err
	}
	s.armSilence()
	h := &held{s: s, first: first, ended: make(chan error, 1), cancel: cancel}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer close(h.ended)
		for {
			if _, err := s.next(); err != nil {
				h.ended <- err
				return
			}
		}
	}()
	return h, nil
}

// release releases what h holds through path ({"lease":lease}) on the
// member that holds it, waiting for the release, then closes the stream.
// It returns the API's error for a release that found nothing to release
// (404: lost in between); other failures are not errors, since closing the
// stream releases what it held too.
func (c *cli) release(h *held, path string, lease int64) error {
	ctx, cancel := c.context()
	defer cancel()
	err := c.callAt(ctx, h.s.ep, path, map[string]any{"lease": lease}, nil)
	h.close()
	var api *apiError
	if errors.As(err, &api) && api.Code == "not_found" {
		return err
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "Warning: %v; the stream's end releases it\n", err)
	}
	return nil
}

// close ends the stream and waits for the goroutine that follows it.
func (h *held) close() {
	h.s.close()
	h.wg.Wait()
	h.cancel(nil)
}

// lostError describes the end of h's stream, or the refusal of its
// release.
func (h *held) lostError(what string, err error) error {
	var api *apiError
	if errors.As(err, &api) {
		return fmt.Errorf("%s lost: %s", what, api.Message)
	}
	return fmt.Errorf("%s lost: the stream from %s broke: %w", what, h.s.ep, err)
}

// ttlMillis converts a --ttl in seconds for the API (0: the server's
// default).
func ttlMillis(flagName string, secs int64) (int64, error) {
	if secs < 0 || secs > 1<<40 {
		return 0, fmt.Errorf("--%s: %d seconds is out of range", flagName, secs)
	}
	return secs * 1000, nil
}

type lockLine struct {
	Lock struct {
		Name  string `json:"name"`
		Key   []byte `json:"key"`
		Fence int64  `json:"fence"`
		Lease int64  `json:"lease"`
	} `json:"lock"`
}

func (c *cli) lock(args []string) error {
	fs := flag.NewFlagSet("lock", flag.ContinueOnError)
	ttl := fs.Int64("ttl", 0, "TTL of the lock's session, in `seconds`: how long the lock outlives a member that dies holding it (0: the server's default, 10)")
	wait := fs.Duration("wait", 0, "give up if the lock is not acquired within `D` (0: wait until interrupted)")
	pos, err := c.parseN(fs, lockUsage, args, 1, -1)
	if err != nil {
		if strings.Contains(err.Error(), "flag provided but not defined") {
			err = fmt.Errorf("%w (a COMMAND with flags goes after --)", err)
		}
		return err
	}
	ttlMs, err := ttlMillis("ttl", *ttl)
	if err != nil {
		return err
	}
	if *wait < 0 {
		return fmt.Errorf("--wait: %v is negative", *wait)
	}
	waitMs := wait.Milliseconds()
	if *wait > 0 && waitMs == 0 {
		waitMs = 1
	}
	name := pos[0]
	var cmd *exec.Cmd
	if len(pos) > 1 {
		// Find COMMAND before taking the lock, not once it is held.
		cmd = exec.Command(pos[1], pos[2:]...)
		if cmd.Err != nil {
			return cmd.Err
		}
	}

	sigs, stopSignals := c.signals()
	defer stopSignals()
	h, err := c.acquire(sigs, "/v1/lock/acquire", map[string]any{"name": name, "ttl_ms": ttlMs, "wait_ms": waitMs})
	if errors.Is(err, errInterrupted) {
		return fmt.Errorf("interrupted before lock %s was acquired", name)
	}
	if err != nil {
		return err
	}
	var line lockLine
	if err := json.Unmarshal(h.first, &line); err != nil || line.Lock.Lease <= 0 {
		h.close()
		return fmt.Errorf("%s: malformed lock line %s", h.s.ep, h.first)
	}
	what := "lock " + name
	if cmd == nil {
		return c.holdUntilInterrupted(h, sigs, what, "/v1/lock/release", line.Lock.Lease, func() error {
			if c.writeOut == "json" {
				return c.writeLine(h.first)
			}
			return c.write(fmt.Appendf(nil, "%s\n%d\n", printable(string(line.Lock.Key)), line.Lock.Fence))
		})
	}

	cmd.Stdin, cmd.Stdout, cmd.Stderr = c.stdin, c.stdout, c.stderr
	cmd.Env = append(os.Environ(),
		"COORD_LOCK_NAME="+name,
		"COORD_LOCK_KEY="+printable(string(line.Lock.Key)),
		"COORD_LOCK_FENCE="+strconv.FormatInt(line.Lock.Fence, 10))
	if err := cmd.Start(); err != nil {
		c.release(h, "/v1/lock/release", line.Lock.Lease)
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ended := h.ended
	var lost error
	var waitErr error
wait:
	for {
		select {
		case waitErr = <-exited:
			break wait
		case sig := <-sigs:
			// SIGINT from a terminal reaches COMMAND itself; SIGTERM is
			// usually sent to coordctl alone.
			if sig == syscall.SIGTERM {
				cmd.Process.Signal(syscall.SIGTERM)
			}
		case err := <-ended:
			ended = nil
			lost = h.lostError(what, err)
			fmt.Fprintf(c.stderr, "Error: %v; sending SIGTERM to %s\n", lost, pos[1])
			cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	status := exitCode(waitErr)
	if lost != nil {
		h.close()
		return fmt.Errorf("%s was lost while %s ran, which exited with status %d", what, pos[1], status)
	}
	// A loss the select above did not see may have come before the exit.
	select {
	case err := <-ended:
		lost = h.lostError(what, err)
	default:
		if err := c.release(h, "/v1/lock/release", line.Lock.Lease); err != nil {
			lost = h.lostError(what, err)
		}
	}
	h.close()
	if lost != nil {
		return fmt.Errorf("%v, by the time %s exited with status %d", lost, pos[1], status)
	}
	if status != 0 {
		return exitStatus(status)
	}
	return nil
}

// exitCode is the exit status of a command that Wait returned err for,
// 128+N for a command killed by signal N (as shells report it).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 1
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}

// holdUntilInterrupted prints what is held (show), keeps it until a signal
// on sigs, then releases it. A loss is an error.
func (c *cli) holdUntilInterrupted(h *held, sigs <-chan os.Signal, what, releasePath string, lease int64, show func() error) error {
	if err := show(); err != nil {
		c.release(h, releasePath, lease)
		return err
	}
	select {
	case <-sigs:
	case err := <-h.ended:
		h.close()
		return h.lostError(what, err)
	}
	if err := c.release(h, releasePath, lease); err != nil {
		return h.lostError(what, err)
	}
	return nil
}

type leaderLine struct {
	Leader *struct {
		Name  string `json:"name"`
		Key   []byte `json:"key"`
		Value []byte `json:"value"`
		Rev   int64  `json:"rev"`
		Lease int64  `json:"lease"`
	} `json:"leader"`
}

func (c *cli) elect(args []string) error {
	fs := flag.NewFlagSet("elect", flag.ContinueOnError)
	listen := fs.Bool("listen", false, "observe the election: print its leader and every change of it")
	ttl := fs.Int64("ttl", 0, "TTL of the candidacy's session, in `seconds` (0: the server's default, 10)")
	pos, err := c.parseN(fs, electUsage, args, 1, 2)
	if err != nil {
		return err
	}
	if *listen {
		if len(pos) != 1 {
			return fmt.Errorf("elect --listen takes 1 argument (NAME), got %d; usage: coordctl %s", len(pos), electUsage)
		}
		return c.observe(pos[0])
	}
	if len(pos) != 2 {
		return fmt.Errorf("elect takes 2 arguments (NAME VALUE), got %d; usage: coordctl %s", len(pos), electUsage)
	}
	ttlMs, err := ttlMillis("ttl", *ttl)
	if err != nil {
		return err
	}
	sigs, stopSignals := c.signals()
	defer stopSignals()
	h, err := c.acquire(sigs, "/v1/election/campaign", map[string]any{"name": pos[0], "value": []byte(pos[1]), "ttl_ms": ttlMs})
	if errors.Is(err, errInterrupted) {
		return fmt.Errorf("interrupted before being elected leader of %s", pos[0])
	}
	if err != nil {
		return err
	}
	var line leaderLine
	if err := json.Unmarshal(h.first, &line); err != nil || line.Leader == nil || line.Leader.Lease <= 0 {
		h.close()
		return fmt.Errorf("%s: malformed leader line %s", h.s.ep, h.first)
	}
	return c.holdUntilInterrupted(h, sigs, "leadership of "+pos[0], "/v1/election/resign", line.Leader.Lease, func() error {
		return c.printLeader(h.first, line)
	})
}

// printLeader prints a leader line: as received for -w json, else the
// leader's key and value, nothing when there is no leader.
func (c *cli) printLeader(raw json.RawMessage, line leaderLine) error {
	if c.writeOut == "json" {
		return c.writeLine(raw)
	}
	if line.Leader == nil {
		return nil
	}
	out := append(append(append([]byte(nil), line.Leader.Key...), '\n'), line.Leader.Value...)
	return c.write(append(out, '\n'))
}

func (c *cli) observe(name string) error {
	ictx, stop := c.interruptible()
	defer stop()
	s, err := c.openStream(ictx, "/v1/election/observe", map[string]any{"name": name}, c.timeout)
	if err != nil {
		if interrupted(ictx, err) {
			return nil
		}
		return err
	}
	defer s.close()
	for first := true; ; first = false {
		raw, err := s.next()
		if err != nil {
			if interrupted(ictx, err) {
				return nil
			}
			return fmt.Errorf("%s: observing election %s: %w", s.ep, name, err)
		}
		if first {
			s.armSilence()
		}
		var line leaderLine
		if err := json.Unmarshal(raw, &line); err != nil {
			return fmt.Errorf("%s: malformed leader line %s", s.ep, raw)
		}
		if err := c.printLeader(raw, line); err != nil {
			return err
		}
	}
}
