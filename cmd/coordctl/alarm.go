package main

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

type alarmResponse struct {
	Shard   int      `json:"shard"`
	Alarm   string   `json:"alarm"`
	Members []string `json:"members"` // CORRUPT: the members whose copy diverged
}

// alarmList prints the alarms raised, as etcdctl alarm list does: one line
// per alarm.
func (c *cli) alarmList(args []string) error {
	fs := flag.NewFlagSet("alarm list", flag.ContinueOnError)
	if _, err := c.parse(fs, "alarm list", args, 0); err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	var resp struct {
		Alarms []alarmResponse `json:"alarms"`
	}
	raw, err := c.call(ctx, "/v1/alarms", nil, &resp, true)
	if err != nil {
		return err
	}
	switch c.writeOut {
	case "json":
		return c.write(raw)
	case "table":
		t := newTable("SHARD", "ALARM", "MEMBERS")
		for _, a := range resp.Alarms {
			t.add(strconv.Itoa(a.Shard), a.Alarm, printable(strings.Join(a.Members, ",")))
		}
		return t.render(c.stdout)
	}
	var b strings.Builder
	for _, a := range resp.Alarms {
		fmt.Fprintf(&b, "shard:%d alarm:%s", a.Shard, a.Alarm)
		if len(a.Members) > 0 {
			fmt.Fprintf(&b, " members:%s", printable(strings.Join(a.Members, ",")))
		}
		b.WriteByte('\n')
	}
	return c.write([]byte(b.String()))
}

const alarmDisarmUsage = "alarm disarm [--alarm NOSPACE|CORRUPT]"

// alarmDisarm clears every alarm, or those of one kind; a shard still at
// its quota raises its alarm again at the next write that would grow it,
// and a CORRUPT alarm comes back at the next check that finds the copies
// still diverged.
func (c *cli) alarmDisarm(args []string) error {
	fs := flag.NewFlagSet("alarm disarm", flag.ContinueOnError)
	kind := fs.String("alarm", "", "clear only the alarms of this `kind`: NOSPACE or CORRUPT")
	if _, err := c.parse(fs, alarmDisarmUsage, args, 0); err != nil {
		return err
	}
	return c.callOK("/v1/alarms/disarm", map[string]any{"alarm": strings.ToUpper(*kind)})
}

type hashCheck struct {
	Shard    int   `json:"shard"`
	Revision int64 `json:"revision"`
	Hashes   []struct {
		Member string `json:"member"`
		Hash   string `json:"hash"`
	} `json:"hashes"`
	Missing []string `json:"missing"`
	Corrupt []string `json:"corrupt"`
}

// checkHash runs an integrity check of every shard and prints each
// member's hash; it fails (status 1) when members diverged, which raises
// the CORRUPT alarm, or when a voter did not report in time.
func (c *cli) checkHash(args []string) error {
	fs := flag.NewFlagSet("check hash", flag.ContinueOnError)
	if _, err := c.parse(fs, "check hash", args, 0); err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	var resp struct {
		Checks []hashCheck `json:"checks"`
	}
	raw, err := c.call(ctx, "/v1/hash/check", map[string]any{}, &resp, false)
	if err != nil {
		return err
	}
	var problems []string
	for _, hc := range resp.Checks {
		if len(hc.Corrupt) > 0 {
			problems = append(problems, fmt.Sprintf("shard %d: %s diverged (CORRUPT alarm raised)", hc.Shard, printable(strings.Join(hc.Corrupt, ", "))))
		}
		if len(hc.Missing) > 0 {
			problems = append(problems, fmt.Sprintf("shard %d: no hash from %s in time", hc.Shard, printable(strings.Join(hc.Missing, ", "))))
		}
	}
	switch c.writeOut {
	case "json":
		err = c.write(raw)
	case "table":
		t := newTable("SHARD", "REVISION", "MEMBER", "HASH", "DIVERGED")
		for _, hc := range resp.Checks {
			for _, h := range hc.Hashes {
				t.add(strconv.Itoa(hc.Shard), strconv.FormatInt(hc.Revision, 10), printable(h.Member), h.Hash,
					strconv.FormatBool(slices.Contains(hc.Corrupt, h.Member)))
			}
		}
		err = t.render(c.stdout)
	default:
		var b strings.Builder
		for _, hc := range resp.Checks {
			verdict := "equal"
			if len(hc.Corrupt) > 0 {
				verdict = "DIFFERENT"
			}
			fmt.Fprintf(&b, "shard %d at revision %d: %d hashes, %s\n", hc.Shard, hc.Revision, len(hc.Hashes), verdict)
			for _, h := range hc.Hashes {
				fmt.Fprintf(&b, "  %s %s\n", printable(h.Member), h.Hash)
			}
		}
		err = c.write([]byte(b.String()))
	}
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("integrity check: %s", strings.Join(problems, "; "))
	}
	return nil
}
