package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

func (c *cli) snapshotSave(args []string) error {
	const usage = "snapshot save FILE"
	fs := flag.NewFlagSet("snapshot save", flag.ContinueOnError)
	pos, err := c.parse(fs, usage, args, 1)
	if err != nil {
		return err
	}
	file := pos[0]
	part := file + ".part"
	ictx, stop := c.interruptible()
	defer stop()
	s, err := c.openStream(ictx, "/v1/snapshot", nil, c.timeout)
	if err != nil {
		return err
	}
	defer s.close()
	f, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, s.r)
	if err != nil {
		err = fmt.Errorf("%s: receiving the snapshot: %w", s.ep, err)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var sum string
	if err == nil {
		if sum, err = checkBackup(part); err != nil {
			err = fmt.Errorf("%s: the snapshot received is not a complete backup: %w", s.ep, err)
		}
	}
	if err == nil {
		err = os.Rename(part, file)
	}
	if err != nil {
		os.Remove(part)
		return err
	}
	// The rename is durable once the directory is synced.
	if d, err := os.Open(filepath.Dir(file)); err == nil {
		d.Sync()
		d.Close()
	}
	if c.writeOut == "json" {
		return c.writeJSON(map[string]any{"file": file, "size": n, "sha256": sum})
	}
	_, err = fmt.Fprintf(c.stdout, "Snapshot saved at %s\n", file)
	return err
}

// checkBackup checks the trailer of a backup written by coord.Node.Snapshot
// (JSON lines, the last of which is {"sha256": the SHA-256 of every byte
// before it}) and returns that sum.
func checkBackup(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	h := sha256.New()
	var last []byte
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			h.Write(last) // every line but the last
			last = line
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
	}
	var trailer struct {
		SHA256 string `json:"sha256"`
	}
	if json.Unmarshal(last, &trailer) != nil || trailer.SHA256 == "" {
		return "", errors.New("no SHA-256 trailer: the transfer was cut short")
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if trailer.SHA256 != sum {
		return "", fmt.Errorf("SHA-256 %s, but the trailer says %s", sum, trailer.SHA256)
	}
	return sum, nil
}

// snapshotRestore loads a backup written by snapshot save into a cluster
// that holds no key.
func (c *cli) snapshotRestore(args []string) error {
	const usage = "snapshot restore FILE"
	fs := flag.NewFlagSet("snapshot restore", flag.ContinueOnError)
	pos, err := c.parse(fs, usage, args, 1)
	if err != nil {
		return err
	}
	file := pos[0]
	// The member verifies it too, but only once it has it whole.
	if _, err := checkBackup(file); err != nil {
		return fmt.Errorf("%s is not a complete backup written by snapshot save: %w", file, err)
	}
	ictx, stop := c.interruptible()
	defer stop()
	var resp struct {
		Keys         int `json:"keys"`
		SkippedLease int `json:"skipped_lease"`
	}
	raw, err := c.upload(ictx, "/v1/snapshot/restore", file, &resp)
	if err != nil {
		return err
	}
	if c.writeOut == "json" {
		return c.write(raw)
	}
	out := fmt.Sprintf("Restored %d keys from %s", resp.Keys, file)
	if resp.SkippedLease > 0 {
		out += fmt.Sprintf(" (%d keys attached to leases skipped)", resp.SkippedLease)
	}
	return c.write([]byte(out + "\n"))
}

// upload POSTs the file as the body of a request for path to the first
// endpoint that can be connected to, and decodes the answer into resp.
// The transfer ends when it makes no progress for --timeout; once the
// whole file is sent, the answer is waited for until it comes or ctx ends.
func (c *cli) upload(ctx context.Context, path, file string, resp any) ([]byte, error) {
	eps, err := c.endpointList()
	if err != nil {
		return nil, err
	}
	var failures []error
	for _, ep := range eps {
		raw, status, sent, err := c.uploadTo(ctx, ep+path, file)
		switch {
		case err == nil:
			return raw, decode(ep, status, raw, resp)
		case isDialError(err):
			failures = append(failures, fmt.Errorf("%s: %w", ep, err))
			continue
		case sent:
			return nil, fmt.Errorf("%s: %w; the whole backup was sent, and the member may be restoring it still (see what the cluster holds with coordctl ls)", ep, err)
		}
		return nil, fmt.Errorf("%s: %w; the backup was not sent whole, so nothing was restored", ep, err)
	}
	return nil, fmt.Errorf("no endpoint answered: %w", joinErrors(failures))
}

// uploadTo does upload's exchange with one URL; sent reports whether the
// whole file went out.
func (c *cli) uploadTo(ctx context.Context, url, file string) (raw []byte, status int, sent bool, err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, 0, false, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, 0, false, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	body := &progressReader{r: f, silence: c.timeout, timer: time.AfterFunc(c.timeout, func() {
		cancel(fmt.Errorf("no progress within %v (--timeout)", c.timeout))
	})}
	req, err := c.newRequest(ctx, http.MethodPost, url, body, "application/octet-stream")
	if err != nil {
		body.stop()
		return nil, 0, false, err
	}
	req.ContentLength = info.Size()
	r, err := c.httpClient().Do(req)
	// An answer may come before the whole file is sent (a refusal).
	sent = body.stop()
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, sent, context.Cause(ctx)
		}
		return nil, 0, sent, unwrapURL(err)
	}
	defer r.Body.Close()
	raw, err = io.ReadAll(io.LimitReader(r.Body, 1<<20))
	return raw, r.StatusCode, sent, err
}

// progressReader reads a file being sent, restarting timer on every read
// that makes progress, until the end of the file or stop.
type progressReader struct {
	r       io.Reader
	silence time.Duration

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
	sent    bool // the whole file was read
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.stopped:
	case errors.Is(err, io.EOF):
		p.sent, p.stopped = true, true
		p.timer.Stop()
	case n > 0:
		p.timer.Reset(p.silence)
	}
	return n, err
}

// stop stops the timer for good and reports whether the whole file was
// read. The transport may still read after the answer came.
func (p *progressReader) stop() (sent bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	p.timer.Stop()
	return p.sent
}
