package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// DefaultDuplicateWindow is how long a message ID is remembered when the
// topic's Retention.DuplicateWindow is zero (NATS JetStream's default).
const DefaultDuplicateWindow = 2 * time.Minute

// maxMsgIDBytes bounds a message ID, well inside coord's key size limit.
const maxMsgIDBytes = 256

// PublishOption configures one Publish.
type PublishOption func(*publishConfig)

type publishConfig struct {
	msgID string
	err   error
}

// WithMsgID makes Publish idempotent for id, like NATS JetStream's
// Nats-Msg-Id header. The first Publish of id to a topic stores the message
// and remembers id; a Publish of the same id to the same topic while it is
// remembered stores nothing and returns the first message's offset, with a
// nil error (it cannot tell the caller which of the two it was, by design:
// a retry must look like a success). The check and the write are one
// transaction, so of several clients publishing one id at once, on any
// members, exactly one stores the message and all get its offset.
//
// An id is remembered for at least the topic's duplicate window
// (Retention.DuplicateWindow, DefaultDuplicateWindow when zero), counted
// from the Publish that stored it (a duplicate does not extend it), and in
// all for at most the window and a quarter, or the Node's MinLeaseTTL if
// that is longer; a change of the topics' shard leader can add up to as
// much again, since it restarts the countdown of the leases that hold the
// ids. Once forgotten, a Publish of id stores a new
// message and starts a new window. A change of the window applies to ids
// stored afterwards. Retention does not affect it: a duplicate of a message
// that Trim removed still returns the removed message's offset.
//
// id is 1 to 256 bytes; ErrInvalid otherwise.
func WithMsgID(id string) PublishOption {
	return func(c *publishConfig) {
		if id == "" || len(id) > maxMsgIDBytes {
			c.err = fmt.Errorf("%w: a message ID has 1 to %d bytes, got %d", ErrInvalid, maxMsgIDBytes, len(id))
			return
		}
		c.msgID = id
	}
}

// publishOnce publishes payload unless id is remembered: one transaction
// that compares the id's key (created with the message, attached to a lease
// that outlives the window) and, if absent, writes both.
func (p *PubSub) publishOnce(ctx context.Context, topic string, payload []byte, id string) (Offset, error) {
	window, err := p.duplicateWindow(ctx, topic)
	if err != nil {
		return 0, err
	}
	key := p.meta(topic) + "dedup/" + id
	for attempt := 0; ; attempt++ {
		lease, err := p.dedup.lease(ctx, p.n, window)
		if err != nil {
			return 0, err
		}
		r, err := p.n.Txn(ctx).If(coord.Compare(coord.CreateRevision(key), "=", 0)).
			Then(coord.OpPut(p.newKey(topic), encode(time.Now(), payload)), coord.OpPut(key, nil, coord.WithLease(lease))).
			Else(coord.OpGet(key)).Commit()
		if errors.Is(err, coord.ErrLeaseNotFound) && attempt == 0 {
			p.dedup.forget(window, lease) // expired under us (a long pause): take a new one
			continue
		}
		if err != nil {
			return 0, err
		}
		if r.Succeeded {
			return offsetOf(r.Header.Revision, 0), nil
		}
		// The id's key was created with the message, in its revision.
		if g := r.Responses[0].Get; g != nil && len(g.KVs) > 0 {
			return offsetOf(g.KVs[0].CreateRevision, 0), nil
		}
		return 0, fmt.Errorf("pubsub: message ID %q of topic %s: its record vanished", id, topic)
	}
}

// duplicateWindow reads topic's window from this member's replica: a
// setting, so a stale read only delays a change of it.
func (p *PubSub) duplicateWindow(ctx context.Context, topic string) (time.Duration, error) {
	g, err := p.n.Get(ctx, p.meta(topic)+"retention", coord.WithSerializable())
	if err != nil {
		return 0, err
	}
	var r Retention
	if len(g.KVs) > 0 {
		if err := json.Unmarshal(g.KVs[0].Value, &r); err != nil {
			return 0, fmt.Errorf("pubsub: topic %s: bad retention record: %w", topic, err)
		}
	}
	if r.DuplicateWindow == 0 {
		return DefaultDuplicateWindow, nil
	}
	return r.DuplicateWindow, nil
}

// dedupLeases hands out the leases that hold message IDs, one per window
// length at a time. A lease granted at g with TTL window+window/4 is used
// for IDs stored until g+window/4, so each ID lives at least window: one
// grant serves every ID of a quarter window, instead of one per Publish.
type dedupLeases struct {
	mu     sync.Mutex
	leases map[time.Duration]dedupLease
}

type dedupLease struct {
	id    coord.LeaseID
	until time.Time
}

// lease returns a lease under which an ID stored now lives at least window.
// Concurrent callers wait for one grant.
func (d *dedupLeases) lease(ctx context.Context, n *coord.Node, window time.Duration) (coord.LeaseID, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if l, ok := d.leases[window]; ok && time.Now().Before(l.until) {
		return l.id, nil
	}
	slack := max(window/4, time.Millisecond)
	ttl := max((window + slack).Round(time.Millisecond), n.MinLeaseTTL())
	granted := time.Now() // the leader starts the countdown later, never sooner
	g, err := n.Grant(ctx, ttl)
	if err != nil {
		return 0, err
	}
	if d.leases == nil {
		d.leases = map[time.Duration]dedupLease{}
	}
	d.leases[window] = dedupLease{id: g.ID, until: granted.Add(ttl - window)}
	return g.ID, nil
}

// forget drops id if it is still the lease handed out for window.
func (d *dedupLeases) forget(window time.Duration, id coord.LeaseID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.leases[window].id == id {
		delete(d.leases, window)
	}
}
