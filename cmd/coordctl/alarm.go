package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
)

type alarmResponse struct {
	Shard int    `json:"shard"`
	Alarm string `json:"alarm"`
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
		t := newTable("SHARD", "ALARM")
		for _, a := range resp.Alarms {
			t.add(strconv.Itoa(a.Shard), a.Alarm)
		}
		return t.render(c.stdout)
	}
	var b strings.Builder
	for _, a := range resp.Alarms {
		fmt.Fprintf(&b, "shard:%d alarm:%s\n", a.Shard, a.Alarm)
	}
	return c.write([]byte(b.String()))
}

// alarmDisarm clears every alarm; a shard still at its quota raises its
// alarm again at the next write that would grow it.
func (c *cli) alarmDisarm(args []string) error {
	fs := flag.NewFlagSet("alarm disarm", flag.ContinueOnError)
	if _, err := c.parse(fs, "alarm disarm", args, 0); err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	raw, err := c.call(ctx, "/v1/alarms/disarm", map[string]any{}, nil, false)
	if err != nil {
		return err
	}
	if c.writeOut == "json" {
		return c.write(raw)
	}
	_, err = fmt.Fprintln(c.stdout, "OK")
	return err
}
