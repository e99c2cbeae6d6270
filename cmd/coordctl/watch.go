package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
)

const (
	watchUsage   = "watch KEY [--prefix] [--rev N] [--prev-kv]"
	compactUsage = "compact REV [--shard N]"
)

type watchLine struct {
	Header struct {
		Revision int64 `json:"revision"`
	} `json:"header"`
	Created bool `json:"created"`
	Events  []struct {
		Type   string `json:"type"`
		KV     *kv    `json:"kv"`
		PrevKV *kv    `json:"prev_kv"`
	} `json:"events"`
	CompactRevision int64 `json:"compact_revision"`
}

func (c *cli) watch(args []string) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	prefix := fs.Bool("prefix", false, "watch every key starting with KEY")
	rev := fs.Int64("rev", 0, "start with the changes at revision `N` (0: the changes after the revision of the member asked, which may lag the cluster by a write)")
	prevKV := fs.Bool("prev-kv", false, "also print each changed key's previous value")
	pos, err := c.parse(fs, watchUsage, args, 1)
	if err != nil {
		return err
	}
	if *rev < 0 {
		return fmt.Errorf("--rev: %d is negative", *rev)
	}
	ictx, stop := c.interruptible()
	defer stop()
	req := map[string]any{"key": []byte(pos[0]), "prefix": *prefix, "start_revision": *rev, "prev_kv": *prevKV}
	s, err := c.openStream(ictx, "/v1/watch", req, c.timeout)
	if err != nil {
		if interrupted(ictx, err) {
			return nil
		}
		return err
	}
	defer s.close()
	// next is the revision to resume from, for the message of a failure.
	next := *rev
	var compacted int64
	for {
		raw, err := s.next()
		if err != nil {
			if interrupted(ictx, err) {
				return nil
			}
			var api *apiError
			if errors.As(err, &api) && api.Code == "compacted" && compacted > 0 {
				return fmt.Errorf("%s: watch: %w; resume with --rev %d, the oldest revision left", s.ep, err, compacted)
			}
			if next > 0 {
				return fmt.Errorf("%s: watch: %w; resume with --rev %d", s.ep, err, next)
			}
			return fmt.Errorf("%s: watch: %w", s.ep, err)
		}
		var line watchLine
		if err := json.Unmarshal(raw, &line); err != nil {
			return fmt.Errorf("%s: malformed watch line %s", s.ep, raw)
		}
		if line.Created {
			s.arm(streamSilence, fmt.Errorf("no line for %v: the connection or the member is gone", streamSilence))
			if next == 0 {
				next = line.Header.Revision + 1
			}
		}
		if line.CompactRevision > 0 {
			compacted = line.CompactRevision
		}
		for _, ev := range line.Events {
			if ev.KV != nil && ev.KV.ModRevision >= next {
				next = ev.KV.ModRevision + 1
			}
		}
		if c.writeOut == "json" {
			if err := c.writeLine(raw); err != nil {
				return err
			}
			continue
		}
		// As etcdctl: the type, the previous key and value if asked for,
		// then the key and value, each on a line, bytes as stored.
		var out []byte
		for _, ev := range line.Events {
			out = append(append(out, ev.Type...), '\n')
			for _, e := range []*kv{ev.PrevKV, ev.KV} {
				if e != nil {
					out = append(append(append(append(out, e.Key...), '\n'), e.Value...), '\n')
				}
			}
		}
		if err := c.write(out); err != nil {
			return err
		}
	}
}

func (c *cli) compact(args []string) error {
	fs := flag.NewFlagSet("compact", flag.ContinueOnError)
	shard := fs.Int("shard", 0, "the shard (Raft group) to compact, as endpoint status numbers them")
	pos, err := c.parse(fs, compactUsage, args, 1)
	if err != nil {
		return err
	}
	rev, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || rev <= 0 {
		return fmt.Errorf("bad revision %q: want a positive number", pos[0])
	}
	ctx, cancel := c.context()
	defer cancel()
	raw, err := c.call(ctx, "/v1/kv/compact", map[string]any{"shard": *shard, "revision": rev}, nil, false)
	if err != nil {
		return err
	}
	if c.writeOut == "json" {
		return c.write(raw)
	}
	_, err = fmt.Fprintf(c.stdout, "compacted revision %d\n", rev)
	return err
}
