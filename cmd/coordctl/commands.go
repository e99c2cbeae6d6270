package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

func (c *cli) put(args []string) error {
	const usage = "put KEY VALUE [--lease ID]"
	fs := flag.NewFlagSet("put", flag.ContinueOnError)
	leaseID := fs.String("lease", "", "attach the key to the lease `ID` (hexadecimal, as lease grant prints it)")
	pos, err := c.parse(fs, usage, args, 2)
	if err != nil {
		return err
	}
	req := map[string]any{"key": []byte(pos[0]), "value": []byte(pos[1])}
	if *leaseID != "" {
		id, err := parseLeaseID(*leaseID)
		if err != nil {
			return fmt.Errorf("--lease: %w", err)
		}
		req["lease"] = id
	}
	return c.callOK("/v1/kv/put", req)
}

// callOK sends req to the write endpoint path and prints the answer: as
// received with -w json, else OK.
func (c *cli) callOK(path string, req any) error {
	ctx, cancel := c.context()
	defer cancel()
	raw, err := c.call(ctx, path, req, nil, false)
	if err != nil {
		return err
	}
	if c.writeOut == "json" {
		return c.write(raw)
	}
	_, err = fmt.Fprintln(c.stdout, "OK")
	return err
}

func (c *cli) get(args []string) error {
	const usage = "get KEY [--prefix] [--serializable] [--limit N] [--rev R] [--keys-only] [--count-only]"
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	prefix := fs.Bool("prefix", false, "get every key starting with KEY")
	serializable := fs.Bool("serializable", false, "read the member's own replica, with no network round (possibly stale)")
	limit := fs.Int64("limit", 0, "return at most `N` keys (0: no limit)")
	rev := fs.Int64("rev", 0, "read as of revision `R` of the key's shard (0: the latest)")
	keysOnly := fs.Bool("keys-only", false, "print the keys only")
	countOnly := fs.Bool("count-only", false, "print only how many keys match")
	pos, err := c.parse(fs, usage, args, 1)
	if err != nil {
		return err
	}
	if *rev < 0 {
		return fmt.Errorf("--rev: %d is negative", *rev)
	}
	ctx, cancel := c.context()
	defer cancel()
	req := map[string]any{"key": []byte(pos[0]), "prefix": *prefix, "serializable": *serializable, "limit": *limit,
		"revision": *rev, "keys_only": *keysOnly, "count_only": *countOnly}
	var resp rangeResponse
	raw, err := c.call(ctx, "/v1/kv/range", req, &resp, true)
	if err != nil {
		return err
	}
	switch {
	case c.writeOut == "json":
		return c.write(raw)
	case *countOnly:
		_, err := fmt.Fprintln(c.stdout, resp.Count)
		return err
	case c.writeOut == "table":
		t := newTable("KEY", "VALUE", "VERSION", "MOD REVISION", "LEASE")
		for _, kv := range resp.KVs {
			t.add(printable(string(kv.Key)), printable(string(kv.Value)), strconv.FormatInt(kv.Version, 10),
				strconv.FormatInt(kv.ModRevision, 10), lease(kv.Lease))
		}
		return t.render(c.stdout)
	}
	// As etcdctl: the key, then the value, each on a line, bytes as stored;
	// with --keys-only, the keys.
	var out []byte
	for _, kv := range resp.KVs {
		out = append(append(out, kv.Key...), '\n')
		if !*keysOnly {
			out = append(append(out, kv.Value...), '\n')
		}
	}
	return c.write(out)
}

func lease(id int64) string {
	if id == 0 {
		return "-"
	}
	return strconv.FormatInt(id, 16)
}

func (c *cli) del(args []string) error {
	const usage = "del KEY [--prefix]"
	fs := flag.NewFlagSet("del", flag.ContinueOnError)
	prefix := fs.Bool("prefix", false, "delete every key starting with KEY")
	pos, err := c.parse(fs, usage, args, 1)
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	req := map[string]any{"key": []byte(pos[0]), "prefix": *prefix}
	var resp deleteResponse
	raw, err := c.call(ctx, "/v1/kv/deleterange", req, &resp, false)
	if err != nil {
		return err
	}
	if c.writeOut == "json" {
		return c.write(raw)
	}
	_, err = fmt.Fprintln(c.stdout, resp.Deleted)
	return err
}

func (c *cli) memberList(args []string) error {
	fs := flag.NewFlagSet("member list", flag.ContinueOnError)
	if _, err := c.parse(fs, "member list", args, 0); err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	var resp struct {
		Members []member `json:"members"`
	}
	raw, err := c.call(ctx, "/v1/members", nil, &resp, true)
	if err != nil {
		return err
	}
	if c.writeOut == "json" {
		return c.write(raw)
	}
	t := newTable("ID", "NAME", "PEER ADDRS", "ROLE", "LEADS", "REACHABLE")
	for _, m := range resp.Members {
		role := "observer"
		if m.Voter {
			role = "voter"
		}
		leads := "-"
		if len(m.Leads) > 0 {
			s := make([]string, len(m.Leads))
			for i, l := range m.Leads {
				s[i] = strconv.Itoa(l)
			}
			leads = strings.Join(s, ",")
		}
		t.add(m.ID, printable(m.Name), printable(m.Address), role, leads, strconv.FormatBool(m.Reachable))
	}
	if c.writeOut == "table" {
		return t.render(c.stdout)
	}
	return c.simple(t)
}

// simple prints a table's rows as etcdctl's simple output does: cells
// separated by ", ", no header.
func (c *cli) simple(t *table) error {
	var b strings.Builder
	for _, row := range t.rows {
		b.WriteString(strings.Join(row, ", ") + "\n")
	}
	return c.write([]byte(b.String()))
}

func (c *cli) memberAdd(args []string) error {
	const usage = "member add NAME ADDR [--observer] [--force]"
	fs := flag.NewFlagSet("member add", flag.ContinueOnError)
	observer := fs.Bool("observer", false, "add a non-voting member")
	force := fs.Bool("force", false, "skip the quorum check (only to recover from members lost for good)")
	pos, err := c.parse(fs, usage, args, 2)
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	req := map[string]any{"name": pos[0], "address": pos[1], "observer": *observer, "force": *force}
	var resp struct {
		Member member `json:"member"`
	}
	raw, err := c.call(ctx, "/v1/members/add", req, &resp, false)
	if err != nil {
		return err
	}
	if c.writeOut == "json" {
		return c.write(raw)
	}
	m := resp.Member
	role, flag, field := "a voter", "", ""
	if !m.Voter {
		role, flag, field = "an observer", " --observer", ", Observer: true"
	}
	_, err = fmt.Fprintf(c.stdout, "Member %s (ID %s) added to the cluster as %s at %s.\n"+
		"Start it with: member --name %s --listen-peer-urls %s --initial-cluster-state existing%s\n"+
		"  and the cluster's --initial-cluster-token, --cluster-secret-file and --shards;\n"+
		"  from Go: coord.Config{Name: %q, RaftAddress: %q, Join: true%s} and the cluster's ClusterToken, ClusterSecret and Shards.\n",
		m.Name, m.ID, role, m.Address, m.Name, m.Address, flag, m.Name, m.Address, field)
	return err
}

func (c *cli) memberRemove(args []string) error {
	return c.memberChange(args, "remove", "removed from the cluster")
}

func (c *cli) memberPromote(args []string) error {
	return c.memberChange(args, "promote", "promoted to voter")
}

func (c *cli) memberChange(args []string, verb, done string) error {
	usage := "member " + verb + " NAME [--force]"
	fs := flag.NewFlagSet("member "+verb, flag.ContinueOnError)
	force := fs.Bool("force", false, "skip the quorum check (only to recover from members lost for good)")
	pos, err := c.parse(fs, usage, args, 1)
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	raw, err := c.call(ctx, "/v1/members/"+verb, map[string]any{"name": pos[0], "force": *force}, nil, false)
	if err != nil {
		return err
	}
	if c.writeOut == "json" {
		return c.write(raw)
	}
	_, err = fmt.Fprintf(c.stdout, "Member %s %s.\n", pos[0], done)
	return err
}

const moveLeaderUsage = "move-leader MEMBER [--shard N|all]"

// moveLeader hands the leadership of a shard, or of every shard, to the
// voter MEMBER, as etcdctl move-leader does, and says who led before, as
// the endpoint that answers saw it.
func (c *cli) moveLeader(args []string) error {
	fs := flag.NewFlagSet("move-leader", flag.ContinueOnError)
	shardFlag := fs.String("shard", "0", "the shard (Raft group) whose leadership to move, as endpoint status numbers them, or all")
	pos, err := c.parse(fs, moveLeaderUsage, args, 1)
	if err != nil {
		return err
	}
	target := pos[0]
	shard, err := strconv.Atoi(*shardFlag)
	if *shardFlag != "all" && (err != nil || shard < 0) {
		return fmt.Errorf("--shard: %q is neither a shard number nor all", *shardFlag)
	}
	ctx, cancel := c.context()
	defer cancel()
	var st statusResponse
	if _, err := c.call(ctx, "/v1/status", nil, &st, true); err != nil {
		return err
	}
	var ms struct {
		Members []member `json:"members"`
	}
	if _, err := c.call(ctx, "/v1/members", nil, &ms, true); err != nil {
		return err
	}
	names := map[string]string{} // replica ID -> name
	for _, m := range ms.Members {
		names[m.ID] = m.Name
	}
	type move struct {
		Shard int    `json:"shard"`
		From  string `json:"from"` // "" when no leader was known
		To    string `json:"to"`
	}
	var moves []move
	for _, s := range st.Shards {
		if *shardFlag != "all" && s.Shard != shard {
			continue
		}
		// A transfer is safe to repeat: it goes to the next endpoint
		// after any failure.
		if _, err := c.call(ctx, "/v1/members/move-leader", map[string]any{"name": target, "shard": s.Shard}, nil, true); err != nil {
			return err
		}
		moves = append(moves, move{Shard: s.Shard, From: names[s.Leader], To: target})
	}
	if len(moves) == 0 {
		return fmt.Errorf("--shard: no shard %d: the cluster has %d (0 to %d)", shard, len(st.Shards), len(st.Shards)-1)
	}
	t := newTable("SHARD", "FROM", "TO")
	var b strings.Builder
	for _, m := range moves {
		from := m.From
		if from == "" {
			from = "-"
		}
		t.add(strconv.Itoa(m.Shard), printable(from), printable(m.To))
		if m.From == m.To {
			fmt.Fprintf(&b, "Member %s already leads shard %d.\n", m.To, m.Shard)
		} else {
			fmt.Fprintf(&b, "Leadership of shard %d moved from %s to %s.\n", m.Shard, from, m.To)
		}
	}
	switch c.writeOut {
	case "json":
		return c.writeJSON(moves)
	case "table":
		return t.render(c.stdout)
	}
	return c.write([]byte(b.String()))
}

func (c *cli) endpointStatus(args []string) error {
	fs := flag.NewFlagSet("endpoint status", flag.ContinueOnError)
	if _, err := c.parse(fs, "endpoint status", args, 0); err != nil {
		return err
	}
	eps, _ := c.endpointList()
	ctx, cancel := c.context()
	defer cancel()
	type answer struct {
		Endpoint string          `json:"endpoint"`
		Status   json.RawMessage `json:"status"`
	}
	var answers []answer
	var failures []error
	t := newTable("ENDPOINT", "MEMBER", "REPLICA ID", "SHARD", "LEADER", "IS LEADER", "RAFT TERM", "REVISION", "COMPACTED", "APPLIED INDEX", "LEASES")
	for _, ep := range eps {
		raw, status, _, err := c.probe(ctx, ep, "/v1/status")
		var st statusResponse
		if err == nil {
			err = decode(ep, status, raw, &st)
		}
		if err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", ep, err))
			continue
		}
		answers = append(answers, answer{Endpoint: ep, Status: json.RawMessage(raw)})
		for _, s := range st.Shards {
			t.add(ep, printable(st.Member), st.ReplicaID, strconv.Itoa(s.Shard), s.Leader, strconv.FormatBool(s.Leader == st.ReplicaID),
				strconv.FormatUint(s.Term, 10), strconv.FormatInt(s.Revision, 10), strconv.FormatInt(s.CompactRevision, 10),
				strconv.FormatUint(s.AppliedIndex, 10), strconv.Itoa(s.Leases))
		}
	}
	var err error
	switch c.writeOut {
	case "json":
		err = c.writeJSON(answers)
	case "table":
		err = t.render(c.stdout)
	default:
		err = c.simple(t)
	}
	if len(failures) > 0 {
		return fmt.Errorf("failed to get the status of %d endpoint(s): %w", len(failures), joinErrors(failures))
	}
	return err
}

func (c *cli) endpointHealth(args []string) error {
	fs := flag.NewFlagSet("endpoint health", flag.ContinueOnError)
	if _, err := c.parse(fs, "endpoint health", args, 0); err != nil {
		return err
	}
	eps, _ := c.endpointList()
	ctx, cancel := c.context()
	defer cancel()
	type answer struct {
		Endpoint string `json:"endpoint"`
		Health   bool   `json:"health"`
		Took     string `json:"took"`
		Error    string `json:"error,omitempty"`
	}
	var answers []answer
	unhealthy := 0
	t := newTable("ENDPOINT", "HEALTH", "TOOK", "ERROR")
	var simple strings.Builder
	for _, ep := range eps {
		raw, status, took, err := c.probe(ctx, ep, "/health")
		var h healthResponse
		if err == nil {
			// A 503 carries {"health":false,"reason":...}, not an error body.
			if jerr := json.Unmarshal(raw, &h); jerr != nil || (status != 200 && status != 503) {
				err = fmt.Errorf("answered HTTP %d", status)
			} else if !h.Health || status != 200 {
				err = errors.New(h.Reason)
			}
		}
		a := answer{Endpoint: ep, Health: err == nil, Took: took.Round(time.Microsecond).String()}
		if err != nil {
			unhealthy++
			a.Error = err.Error()
			fmt.Fprintf(&simple, "%s is unhealthy: failed to check its health: %v\n", ep, err)
		} else {
			fmt.Fprintf(&simple, "%s is healthy: took = %s\n", ep, a.Took)
		}
		answers = append(answers, a)
		t.add(ep, strconv.FormatBool(a.Health), a.Took, printable(a.Error))
	}
	var err error
	switch c.writeOut {
	case "json":
		err = c.writeJSON(answers)
	case "table":
		err = t.render(c.stdout)
	default:
		err = c.write([]byte(simple.String()))
	}
	if unhealthy > 0 {
		return fmt.Errorf("unhealthy cluster: %d of %d endpoint(s) unhealthy", unhealthy, len(eps))
	}
	return err
}

func (c *cli) write(b []byte) error {
	_, err := c.stdout.Write(b)
	return err
}

// writeLine writes a line of a stream as received, with its newline.
func (c *cli) writeLine(raw json.RawMessage) error {
	return c.write(append(raw[:len(raw):len(raw)], '\n'))
}

func (c *cli) writeJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.write(append(b, '\n'))
}
