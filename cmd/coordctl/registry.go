package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

const (
	svcListUsage  = "svc list [SERVICE] [--dir DIR] [--passing-only] [--serializable]"
	svcWatchUsage = "svc watch SERVICE [--dir DIR] [--from-rev N]"
	// servicesDir is the registry's directory when --dir is not given, as
	// the API's.
	servicesDir = "/services"
)

type instance struct {
	Service  string            `json:"service"`
	ID       string            `json:"id"`
	Addr     string            `json:"addr"`
	Metadata map[string]string `json:"metadata"`
	Weight   int               `json:"weight"`
	Status   string            `json:"status"`
	Revision int64             `json:"revision"`
}

// row is an instance's cells in svc list and svc watch: ID, ADDR,
// STATUS, WEIGHT, METADATA (key=value, sorted by key) and REVISION.
func (in *instance) row() []string {
	md := make([]string, 0, len(in.Metadata))
	for k, v := range in.Metadata {
		md = append(md, k+"="+v)
	}
	sort.Strings(md)
	return []string{printable(in.ID), printable(in.Addr), printable(in.Status), strconv.Itoa(in.Weight),
		printable(strings.Join(md, ",")), strconv.FormatInt(in.Revision, 10)}
}

var instanceHeader = []string{"ID", "ADDR", "STATUS", "WEIGHT", "METADATA", "REVISION"}

// svcList prints the services registered, or the instances of one.
func (c *cli) svcList(args []string) error {
	fs := flag.NewFlagSet("svc list", flag.ContinueOnError)
	dir := fs.String("dir", servicesDir, "the `directory` the registry lives in")
	passing := fs.Bool("passing-only", false, "only the instances whose status is passing")
	serializable := fs.Bool("serializable", false, "read the member's own replica, with no network round (possibly stale)")
	pos, err := c.parseN(fs, svcListUsage, args, 0, 1)
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	if len(pos) == 0 {
		if *passing || *serializable {
			return errors.New("--passing-only and --serializable apply to the instances of a SERVICE")
		}
		var resp struct {
			Services []string `json:"services"`
		}
		raw, err := c.call(ctx, "/v1/registry/services", map[string]any{"prefix": *dir}, &resp, true)
		if err != nil {
			return err
		}
		t := newTable("SERVICE")
		var b strings.Builder
		for _, s := range resp.Services {
			t.add(printable(s))
			b.WriteString(s + "\n")
		}
		switch c.writeOut {
		case "json":
			return c.write(raw)
		case "table":
			return t.render(c.stdout)
		}
		return c.write([]byte(b.String()))
	}
	var resp struct {
		Instances []instance `json:"instances"`
	}
	req := map[string]any{"prefix": *dir, "service": pos[0], "passing_only": *passing, "local": *serializable}
	raw, err := c.call(ctx, "/v1/registry/lookup", req, &resp, true)
	if err != nil {
		return err
	}
	t := newTable(instanceHeader...)
	for _, in := range resp.Instances {
		t.add(in.row()...)
	}
	switch c.writeOut {
	case "json":
		return c.write(raw)
	case "table":
		return t.render(c.stdout)
	}
	return c.simple(t)
}

type registryLine struct {
	Type     string    `json:"type"`
	Instance *instance `json:"instance"`
	Revision int64     `json:"revision"`
}

// svcWatch prints the instances of a service, "synced", then every change,
// until interrupted.
func (c *cli) svcWatch(args []string) error {
	fs := flag.NewFlagSet("svc watch", flag.ContinueOnError)
	dir := fs.String("dir", servicesDir, "the `directory` the registry lives in")
	from := fs.Int64("from-rev", 0, "resume after revision `N` (the last one received): the changes after it, without the instances present")
	pos, err := c.parse(fs, svcWatchUsage, args, 1)
	if err != nil {
		return err
	}
	if *from < 0 {
		return fmt.Errorf("--from-rev: %d is negative", *from)
	}
	service := pos[0]
	req := map[string]any{"prefix": *dir, "service": service, "from_revision": *from}
	// last is the revision to resume after, for the message of a failure:
	// known once the instances present have all come (synced).
	last, synced := *from, *from > 0
	each := func(ep string, raw json.RawMessage) error {
		var line registryLine
		if err := json.Unmarshal(raw, &line); err != nil || (line.Instance == nil && line.Type != "synced") {
			return fmt.Errorf("%s: malformed registry line %s", ep, raw)
		}
		synced = synced || line.Type == "synced"
		if synced {
			last = max(last, line.Revision)
		}
		switch {
		case c.writeOut == "json":
			return c.writeLine(raw)
		case line.Instance == nil:
			return c.write([]byte(line.Type + "\n"))
		}
		// As svc list's rows, after the type.
		return c.write([]byte(strings.Join(append([]string{line.Type}, line.Instance.row()...), ", ") + "\n"))
	}
	return c.follow("/v1/registry/watch", req, "watching service "+service, each, func(error) string {
		if last > 0 {
			return fmt.Sprintf("resume with --from-rev %d", last)
		}
		return ""
	})
}
