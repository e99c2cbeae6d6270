package main

import (
	"flag"
	"strconv"
	"strings"
)

const lsUsage = "ls [DIR] [--serializable]"

type listResponse struct {
	Entries []struct {
		Name []byte `json:"name"`
		Dir  bool   `json:"dir"`
		KV   *kv    `json:"kv"`
	} `json:"entries"`
}

// ls prints the immediate children of DIR (default "/"), as ls -p does:
// names relative to DIR, one a line, a directory's ending in "/".
func (c *cli) ls(args []string) error {
	fs := flag.NewFlagSet("ls", flag.ContinueOnError)
	serializable := fs.Bool("serializable", false, "read the member's own replica, with no network round (possibly stale)")
	pos, err := c.parseN(fs, lsUsage, args, 0, 1)
	if err != nil {
		return err
	}
	dir := "/"
	if len(pos) == 1 {
		dir = pos[0]
	}
	ctx, cancel := c.context()
	defer cancel()
	var resp listResponse
	raw, err := c.call(ctx, "/v1/kv/list", map[string]any{"dir": []byte(dir), "serializable": *serializable}, &resp, true)
	if err != nil {
		return err
	}
	if c.writeOut == "json" {
		return c.write(raw)
	}
	// The API names children by their whole key; coord appends the "/".
	if dir != "" && !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	t := newTable("NAME", "VALUE", "VERSION", "MOD REVISION", "LEASE")
	var out []byte
	for _, e := range resp.Entries {
		name := strings.TrimPrefix(string(e.Name), dir)
		out = append(append(out, name...), '\n')
		if e.Dir || e.KV == nil {
			t.add(printable(name))
			continue
		}
		t.add(printable(name), printable(string(e.KV.Value)), strconv.FormatInt(e.KV.Version, 10),
			strconv.FormatInt(e.KV.ModRevision, 10), lease(e.KV.Lease))
	}
	if c.writeOut == "table" {
		return t.render(c.stdout)
	}
	return c.write(out)
}
