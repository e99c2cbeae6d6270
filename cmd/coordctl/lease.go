package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

type (
	leaseResponse struct {
		ID    int64 `json:"id"`
		TTLMs int64 `json:"ttl_ms"`
	}
	leaseTimeToLiveResponse struct {
		ID           int64    `json:"id"`
		TTLMs        int64    `json:"ttl_ms"`
		GrantedTTLMs int64    `json:"granted_ttl_ms"`
		Keys         [][]byte `json:"keys"`
	}
)

// keepAliveRetry is how soon a renewal that failed for a reason other than
// the lease being gone is tried again, at most.
const keepAliveRetry = time.Second

// parseLeaseID reads a lease ID as coordctl prints it: hexadecimal, with or
// without 0x.
func parseLeaseID(s string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), 16, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("bad lease ID %q: want a positive hexadecimal number, as lease grant prints it", s)
	}
	return id, nil
}

// parseLease parses the flags and the one argument of a command that takes
// a lease ID.
func (c *cli) parseLease(fs *flag.FlagSet, usage string, args []string) (int64, error) {
	pos, err := c.parse(fs, usage, args, 1)
	if err != nil {
		return 0, err
	}
	return parseLeaseID(pos[0])
}

// seconds prints a TTL in milliseconds as seconds: whole when it is, else
// with the fraction.
func seconds(ms int64) string {
	return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) + "s"
}

// ceilSeconds prints a remaining time in whole seconds, rounded up so that
// a live lease never reads 0s.
func ceilSeconds(ms int64) string {
	return strconv.FormatInt((ms+999)/1000, 10) + "s"
}

// notFound turns the API's not_found for lease id into a message naming it.
func leaseNotFound(id int64, err error) error {
	var api *apiError
	if errors.As(err, &api) && api.Code == "not_found" {
		return fmt.Errorf("lease %x not found (expired or revoked): %w", id, err)
	}
	return err
}

func (c *cli) leaseGrant(args []string) error {
	const usage = "lease grant TTL_SECONDS"
	fs := flag.NewFlagSet("lease grant", flag.ContinueOnError)
	pos, err := c.parse(fs, usage, args, 1)
	if err != nil {
		return err
	}
	ttl, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || ttl <= 0 || ttl > 1<<40 {
		return fmt.Errorf("bad TTL %q: want a positive whole number of seconds", pos[0])
	}
	ctx, cancel := c.context()
	defer cancel()
	var resp leaseResponse
	raw, err := c.call(ctx, "/v1/lease/grant", map[string]any{"ttl_ms": ttl * 1000}, &resp, false)
	if err != nil {
		return err
	}
	if c.writeOut == "json" {
		return c.write(raw)
	}
	_, err = fmt.Fprintf(c.stdout, "lease %x granted with TTL(%s)\n", resp.ID, seconds(resp.TTLMs))
	return err
}

func (c *cli) leaseRevoke(args []string) error {
	const usage = "lease revoke ID"
	fs := flag.NewFlagSet("lease revoke", flag.ContinueOnError)
	id, err := c.parseLease(fs, usage, args)
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	raw, err := c.call(ctx, "/v1/lease/revoke", map[string]any{"id": id}, nil, false)
	if err != nil {
		return leaseNotFound(id, err)
	}
	if c.writeOut == "json" {
		return c.write(raw)
	}
	_, err = fmt.Fprintf(c.stdout, "lease %x revoked\n", id)
	return err
}

func (c *cli) leaseTimeToLive(args []string) error {
	const usage = "lease timetolive ID [--keys]"
	fs := flag.NewFlagSet("lease timetolive", flag.ContinueOnError)
	keys := fs.Bool("keys", false, "also list the keys attached to the lease")
	id, err := c.parseLease(fs, usage, args)
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	var resp leaseTimeToLiveResponse
	raw, err := c.call(ctx, "/v1/lease/timetolive", map[string]any{"id": id, "keys": *keys}, &resp, true)
	if err != nil {
		return leaseNotFound(id, err)
	}
	names := make([]string, len(resp.Keys))
	for i, k := range resp.Keys {
		names[i] = printable(string(k))
	}
	switch c.writeOut {
	case "json":
		return c.write(raw)
	case "table":
		header := []string{"ID", "TTL", "REMAINING"}
		row := []string{lease(resp.ID), seconds(resp.GrantedTTLMs), ceilSeconds(resp.TTLMs)}
		if *keys {
			header, row = append(header, "KEYS"), append(row, strings.Join(names, ", "))
		}
		t := newTable(header...)
		t.add(row...)
		return t.render(c.stdout)
	}
	out := fmt.Sprintf("lease %x granted with TTL(%s), remaining(%s)", resp.ID, seconds(resp.GrantedTTLMs), ceilSeconds(resp.TTLMs))
	if *keys {
		out += fmt.Sprintf(", attached keys([%s])", strings.Join(names, " "))
	}
	return c.write([]byte(out + "\n"))
}

func (c *cli) leaseList(args []string) error {
	fs := flag.NewFlagSet("lease list", flag.ContinueOnError)
	if _, err := c.parse(fs, "lease list", args, 0); err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	var resp struct {
		Leases []leaseResponse `json:"leases"`
	}
	raw, err := c.call(ctx, "/v1/lease/leases", nil, &resp, true)
	if err != nil {
		return err
	}
	switch c.writeOut {
	case "json":
		return c.write(raw)
	case "table":
		t := newTable("ID", "TTL")
		for _, l := range resp.Leases {
			t.add(lease(l.ID), seconds(l.TTLMs))
		}
		return t.render(c.stdout)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "found %d leases\n", len(resp.Leases))
	for _, l := range resp.Leases {
		fmt.Fprintf(&b, "%x\n", l.ID)
	}
	return c.write([]byte(b.String()))
}

func (c *cli) leaseKeepAlive(args []string) error {
	const usage = "lease keep-alive ID [--once]"
	fs := flag.NewFlagSet("lease keep-alive", flag.ContinueOnError)
	once := fs.Bool("once", false, "renew the lease once and exit")
	id, err := c.parseLease(fs, usage, args)
	if err != nil {
		return err
	}
	ictx, stop := c.interruptible()
	defer stop()
	for {
		ctx, cancel := c.requestContext(ictx)
		var resp leaseResponse
		// A renewal is safe to repeat: it goes to the next endpoint after
		// any failure.
		raw, err := c.call(ctx, "/v1/lease/keepalive", map[string]any{"id": id}, &resp, true)
		cancel()
		var next time.Duration
		switch {
		case interrupted(ictx, nil):
			return nil
		case err != nil:
			err = leaseNotFound(id, err)
			var api *apiError
			if *once || (errors.As(err, &api) && api.Code == "not_found") {
				return err
			}
			// The lease may outlive a failed renewal (no quorum for a
			// while, a member restarting): try again soon.
			fmt.Fprintf(c.stderr, "Warning: renewing lease %x: %v; retrying\n", id, err)
			next = keepAliveRetry
		default:
			if c.writeOut == "json" {
				err = c.write(raw)
			} else {
				_, err = fmt.Fprintf(c.stdout, "lease %x keepalived with TTL(%s)\n", resp.ID, seconds(resp.TTLMs))
			}
			if err != nil || *once {
				return err
			}
			next = time.Duration(resp.TTLMs) * time.Millisecond / 3
		}
		if !sleep(ictx, max(next, 10*time.Millisecond)) {
			return nil
		}
	}
}

// sleep waits for d, or less when ctx ends first; it reports whether it
// waited the whole d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
