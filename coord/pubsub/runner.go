package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// RunOption configures RunRetention.
type RunOption func(*runConfig)

type runConfig struct {
	onTrim func(topic string, removed int, err error)
}

// OnTrim has RunRetention call f after each Trim that removed messages or
// failed (removed counts what it removed before failing). f runs on the
// runner's goroutine, between trims: it should return quickly.
func OnTrim(f func(topic string, removed int, err error)) RunOption {
	return func(c *runConfig) { c.onTrim = f }
}

// RunRetention applies retention in the background: every interval
// `every`, if this member leads the shard that holds the PubSub's topics
// (all topics under one prefix share a shard), it runs Trim on each topic,
// so topics are trimmed by age, count and size whether or not anything is
// published to them, and their counters stay current for Stats. A member
// that does not lead only checks, locally, that it still does not.
//
// Run it on every member that may lead (or on enough of them): when the
// leadership moves, the new leader's runner takes over at its next tick.
// Two members may briefly both believe they lead; their Trims then race,
// which is safe (see Trim): each message is removed and counted once, and a
// former leader's writes fail without a quorum. Trimming is best effort:
// a Trim that fails is reported to OnTrim and tried again at the next
// tick.
//
// It blocks until ctx ends, and then returns ctx's error; it returns
// coord.ErrClosed if the Node closes, and ErrInvalid at once if every is not
// positive. Each call runs one runner; run one per PubSub prefix and
// member.
func (p *PubSub) RunRetention(ctx context.Context, every time.Duration, opts ...RunOption) error {
	if every <= 0 {
		return fmt.Errorf("%w: RunRetention every %v: must be positive", ErrInvalid, every)
	}
	var c runConfig
	for _, o := range opts {
		o(&c)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if err := p.retainOnce(ctx, &c); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// retainOnce trims every topic if this member leads their shard. It
// returns an error only when the runner must stop (the Node closed).
func (p *PubSub) retainOnce(ctx context.Context, c *runConfig) error {
	leads, err := p.leads(ctx)
	if !leads {
		return fatal(ctx, err)
	}
	l, err := p.n.List(ctx, p.prefix)
	if err != nil {
		return fatal(ctx, err)
	}
	for _, e := range l.Entries {
		topic := strings.TrimSuffix(strings.TrimPrefix(e.Name, p.prefix), "/")
		if !e.Dir || validTopic(topic) != nil {
			continue
		}
		if leads, err := p.leads(ctx); !leads {
			return fatal(ctx, err) // the leadership moved: the new leader's runner goes on
		}
		n, err := p.Trim(ctx, topic)
		if (n > 0 || err != nil) && c.onTrim != nil && ctx.Err() == nil {
			c.onTrim(topic, n, err)
		}
		if err := fatal(ctx, err); err != nil {
			return err
		}
	}
	return nil
}

// leads reports whether this member leads the shard of the PubSub's
// topics, as its own replica knows (no network).
func (p *PubSub) leads(ctx context.Context) (bool, error) {
	st, err := p.n.Status(ctx)
	if err != nil {
		return false, err
	}
	s := p.n.ShardOf(p.prefix)
	return s < len(st.Shards) && st.Shards[s].Leader != 0 && st.Shards[s].Leader == st.ReplicaID, nil
}

// fatal keeps the errors that end a runner: the Node's closing or ctx's end.
func fatal(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, coord.ErrClosed) {
		return err
	}
	return nil
}
