package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
