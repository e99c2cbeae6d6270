// Package pubsub is durable publish/subscribe on coordkit, built on coord's
// public API only.
//
// # Messages and offsets
//
// A message is a key under prefix/topic/m/. Its offset is derived from the
// revision that created it (times 1024, plus its position when a batch
// created several), so offsets strictly increase within a topic; they are
// not consecutive, since other writes in the topic's shard use revisions too.
// Publish returns once the message is committed through Raft and fsynced on
// a quorum: unlike NATS's default, an acknowledged message survives the
// loss of any minority of members.
//
// Publish with WithMsgID is idempotent within the topic's duplicate window
// (Retention.DuplicateWindow, two minutes by default): publishing an ID
// again, for example after a Publish that failed with
// coord.ErrOutcomeUnknown, stores nothing and returns the first message's
// offset, even when several clients publish the ID at once.
//
// # Subscribers, consumers and groups
//
// Subscribe delivers every message from a starting point (now, an offset,
// the earliest retained, or a time) in offset order with no gap and no
// duplicate while connected. Durable consumers resume after a restart from
// their last acknowledged offset (at-least-once). Consumer groups share a
// topic: each message is processed by one member, and the messages of a
// member that dies are redelivered to another.
//
// A message that keeps failing does not block a consumer forever: with
// MaxDeliveries it goes, after that many deliveries without an Ack, to a
// dead-letter topic as a DeadLetter (the reason and the count), and the
// consumer moves past it. A group counts the deliveries of a message in the
// store, so a message that kills every member it reaches still ends in the
// dead-letter topic. Nak asks for a delayed redelivery; InProgress puts off
// the redelivery of a long task.
//
// # Retention and statistics
//
// SetRetention bounds what a topic keeps (count, bytes, age). Trim applies
// it once; RunRetention applies it in the background, on every topic, from
// the member that leads the topics' shard, so idle topics are trimmed too.
// Run RunRetention on every member that should be able to take over: only
// the leader's runner trims, and concurrent trims (during a change of
// leader) remove each message once and count it once.
//
// Stats reads a topic's counters, which Trim keeps up to date in the same
// transactions that remove messages: it reads the counters and the messages
// published since they were last updated, not the whole topic.
package pubsub
