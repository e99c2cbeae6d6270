package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"
)

const (
	topicPublishUsage   = "topic publish TOPIC MESSAGE [--dir DIR] [--msg-id ID]"
	topicRetentionUsage = "topic retention TOPIC [--max-messages N] [--max-bytes N] [--max-age D] [--duplicate-window D] [--dir DIR]"
	topicTailUsage      = "topic tail TOPIC [--from now|earliest|OFFSET|TIME|DURATION] [--dir DIR]"
	topicStatsUsage     = "topic stats TOPIC [--dir DIR]"
	// topicsDir is where topics live when --dir is not given, as the API's.
	topicsDir = "/topics"
)

func topicDir(fs *flag.FlagSet) *string {
	return fs.String("dir", topicsDir, "the `directory` the topics live in")
}

func (c *cli) topicPublish(args []string) error {
	fs := flag.NewFlagSet("topic publish", flag.ContinueOnError)
	dir := topicDir(fs)
	msgID := fs.String("msg-id", "", "a message `ID`: publishing it again within the topic's duplicate window stores nothing and prints the first offset")
	pos, err := c.parse(fs, topicPublishUsage, args, 2)
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	var resp struct {
		Offset int64 `json:"offset"`
	}
	raw, err := c.call(ctx, "/v1/pubsub/publish", map[string]any{"prefix": *dir, "topic": pos[0], "payload": []byte(pos[1]), "msg_id": *msgID}, &resp, false)
	if err != nil {
		return err
	}
	if c.writeOut == "json" {
		return c.write(raw)
	}
	_, err = fmt.Fprintf(c.stdout, "published at offset %d\n", resp.Offset)
	return err
}

// parseFrom turns tail's --from into the subscribe request's fields: now,
// earliest, an offset, an RFC 3339 time, or a duration meaning that long
// ago.
func parseFrom(from string, now time.Time) (map[string]any, error) {
	switch from {
	case "now", "earliest":
		return map[string]any{"from": from}, nil
	}
	if off, err := strconv.ParseInt(from, 10, 64); err == nil {
		if off <= 0 {
			return nil, fmt.Errorf("--from: offset %d is not positive", off)
		}
		return map[string]any{"offset": off}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, from); err == nil {
		return map[string]any{"time": t}, nil
	}
	if d, err := time.ParseDuration(from); err == nil && d >= 0 {
		return map[string]any{"time": now.Add(-d)}, nil
	}
	return nil, fmt.Errorf("--from: %q is not now, earliest, an offset, an RFC 3339 time or a duration ago (such as 10m)", from)
}

type messageLine struct {
	Message struct {
		Offset  int64  `json:"offset"`
		Payload []byte `json:"payload"`
	} `json:"message"`
}

// topicTail prints each message of a topic, from --from on, until
// interrupted.
func (c *cli) topicTail(args []string) error {
	fs := flag.NewFlagSet("topic tail", flag.ContinueOnError)
	dir := topicDir(fs)
	from := fs.String("from", "now", "where to start: now, earliest, an `OFFSET` (that message included), an RFC 3339 time, or a duration ago (10m)")
	pos, err := c.parse(fs, topicTailUsage, args, 1)
	if err != nil {
		return err
	}
	req, err := parseFrom(*from, time.Now())
	if err != nil {
		return err
	}
	topic := pos[0]
	req["prefix"], req["topic"] = *dir, topic
	var next int64 // the offset to resume from, once a message came
	each := func(ep string, raw json.RawMessage) error {
		var line messageLine
		if err := json.Unmarshal(raw, &line); err != nil || line.Message.Offset <= 0 {
			return fmt.Errorf("%s: malformed message line %s", ep, raw)
		}
		next = line.Message.Offset + 1
		if c.writeOut == "json" {
			return c.writeLine(raw)
		}
		// As etcdctl prints values: the bytes as published.
		return c.write(append(append([]byte(nil), line.Message.Payload...), '\n'))
	}
	return c.follow("/v1/pubsub/subscribe", req, "tailing topic "+topic, each, func(err error) string {
		var api *apiError
		switch {
		case errors.As(err, &api) && api.Code == "out_of_range":
			return "resume with --from earliest"
		case next > 0:
			return fmt.Sprintf("resume with --from %d", next)
		}
		return ""
	})
}

func (c *cli) topicStats(args []string) error {
	fs := flag.NewFlagSet("topic stats", flag.ContinueOnError)
	dir := topicDir(fs)
	pos, err := c.parse(fs, topicStatsUsage, args, 1)
	if err != nil {
		return err
	}
	ctx, cancel := c.context()
	defer cancel()
	var st struct {
		Messages int   `json:"messages"`
		Bytes    int64 `json:"bytes"`
		First    int64 `json:"first"`
		Last     int64 `json:"last"`
		Removed  int64 `json:"removed"`
	}
	raw, err := c.call(ctx, "/v1/pubsub/stats", map[string]any{"prefix": *dir, "topic": pos[0]}, &st, true)
	if err != nil {
		return err
	}
	switch c.writeOut {
	case "json":
		return c.write(raw)
	case "table":
		t := newTable("TOPIC", "MESSAGES", "BYTES", "FIRST", "LAST", "REMOVED")
		t.add(printable(pos[0]), strconv.Itoa(st.Messages), strconv.FormatInt(st.Bytes, 10),
			strconv.FormatInt(st.First, 10), strconv.FormatInt(st.Last, 10), strconv.FormatInt(st.Removed, 10))
		return t.render(c.stdout)
	}
	out := fmt.Sprintf("topic %s: %d messages, %d bytes", pos[0], st.Messages, st.Bytes)
	if st.Messages > 0 {
		out += fmt.Sprintf(", offsets %d to %d", st.First, st.Last)
	}
	return c.write(fmt.Appendf(nil, "%s, %d removed by retention\n", out, st.Removed))
}

// topicRetention replaces a topic's retention. The member leading the
// topics' shard applies it in the background.
func (c *cli) topicRetention(args []string) error {
	fs := flag.NewFlagSet("topic retention", flag.ContinueOnError)
	dir := topicDir(fs)
	maxMessages := fs.Int("max-messages", 0, "keep at most `N` messages (0: no bound)")
	maxBytes := fs.Int64("max-bytes", 0, "keep at most `N` bytes of payload (0: no bound)")
	maxAge := fs.Duration("max-age", 0, "remove messages older than `D` (0: no bound)")
	window := fs.Duration("duplicate-window", 0, "remember a --msg-id for `D` (0: the default, 2m)")
	pos, err := c.parse(fs, topicRetentionUsage, args, 1)
	if err != nil {
		return err
	}
	return c.callOK("/v1/pubsub/retention", map[string]any{"prefix": *dir, "topic": pos[0], "max_messages": *maxMessages,
		"max_bytes": *maxBytes, "max_age_ms": maxAge.Milliseconds(), "duplicate_window_ms": window.Milliseconds()})
}
