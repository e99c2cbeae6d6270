package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

const txnUsage = "txn   (reads compares, success ops and failure ops from stdin, each list ended by an empty line, as etcdctl txn)"

// compareLine is etcdctl's compare syntax: TARGET("KEY") OP "VALUE", with
// TARGET one of value, version (ver), create (c), mod (m) and lease.
var compareLine = regexp.MustCompile(`^\s*(value|ver|version|c|create|m|mod|lease)\("((?:[^"\\]|\\.)*)"\)\s*(=|!=|<|>)\s*"((?:[^"\\]|\\.)*)"\s*$`)

var compareTargets = map[string]string{"value": "value", "ver": "version", "version": "version",
	"c": "create", "create": "create", "m": "mod", "mod": "mod", "lease": "lease"}

// txn runs a transaction read from stdin in etcdctl's interactive format:
//
//	value("key") = "v"        compares, one per line
//	                          (empty line)
//	put key value             success ops: put KEY VALUE, get KEY, del KEY
//	                          (empty line)
//	put key other             failure ops
//
// It prints SUCCESS or FAILURE, then each op's result as get, put and del
// print theirs.
func (c *cli) txn(args []string) error {
	fs := flag.NewFlagSet("txn", flag.ContinueOnError)
	if _, err := c.parse(fs, txnUsage, args, 0); err != nil {
		return err
	}
	if c.stdin == nil {
		return fmt.Errorf("txn reads its transaction from stdin")
	}
	sc := bufio.NewScanner(c.stdin)
	section := func() []string {
		var lines []string
		for sc.Scan() {
			l := strings.TrimSpace(sc.Text())
			if l == "" {
				break
			}
			lines = append(lines, l)
		}
		return lines
	}
	var compares []map[string]any
	for _, l := range section() {
		m := compareLine.FindStringSubmatch(l)
		if m == nil {
			return fmt.Errorf("bad compare %q: want TARGET(\"KEY\") OP \"VALUE\", TARGET value, version, create, mod or lease", l)
		}
		key, err1 := strconv.Unquote(`"` + m[2] + `"`)
		val, err2 := strconv.Unquote(`"` + m[4] + `"`)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("bad quoting in compare %q", l)
		}
		cmp := map[string]any{"key": []byte(key), "target": compareTargets[m[1]], "result": m[3]}
		if cmp["target"] == "value" {
			cmp["value"] = []byte(val)
		} else {
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return fmt.Errorf("compare %q: %q is not a number", l, val)
			}
			cmp["number"] = n
		}
		compares = append(compares, cmp)
	}
	success, err := txnOps(section())
	if err != nil {
		return err
	}
	failure, err := txnOps(section())
	if err != nil {
		return err
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	var resp struct {
		Succeeded bool `json:"succeeded"`
		Responses []struct {
			Put         *struct{}      `json:"put"`
			Range       *rangeResponse `json:"range"`
			DeleteRange *struct {
				Deleted int64 `json:"deleted"`
			} `json:"delete_range"`
		} `json:"responses"`
	}
	raw, err := c.call(ctx, "/v1/kv/txn", map[string]any{"compare": compares, "success": success, "failure": failure}, &resp, false)
	if err != nil {
		return err
	}
	if c.writeOut == "json" {
		return c.write(raw)
	}
	var b strings.Builder
	if resp.Succeeded {
		b.WriteString("SUCCESS\n")
	} else {
		b.WriteString("FAILURE\n")
	}
	for _, r := range resp.Responses {
		b.WriteString("\n")
		switch {
		case r.Put != nil:
			b.WriteString("OK\n")
		case r.DeleteRange != nil:
			fmt.Fprintf(&b, "%d\n", r.DeleteRange.Deleted)
		case r.Range != nil:
			for _, kv := range r.Range.KVs {
				fmt.Fprintf(&b, "%s\n%s\n", kv.Key, kv.Value)
			}
		}
	}
	return c.write([]byte(b.String()))
}

// txnOps parses etcdctl's op lines: put KEY VALUE, get KEY, del KEY.
func txnOps(lines []string) ([]map[string]any, error) {
	var ops []map[string]any
	for _, l := range lines {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[0] == "put":
			value := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(l, "put")), f[1]))
			ops = append(ops, map[string]any{"put": map[string]any{"key": []byte(f[1]), "value": []byte(value)}})
		case len(f) == 2 && f[0] == "get":
			ops = append(ops, map[string]any{"range": map[string]any{"key": []byte(f[1])}})
		case len(f) == 2 && (f[0] == "del" || f[0] == "delete"):
			ops = append(ops, map[string]any{"delete_range": map[string]any{"key": []byte(f[1])}})
		default:
			return nil, fmt.Errorf("bad op %q: want put KEY VALUE, get KEY or del KEY", l)
		}
	}
	return ops, nil
}
