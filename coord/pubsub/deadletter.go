package pubsub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// DeadLetter is what a dead-letter topic's messages hold (JSON): a
// message that was delivered MaxDeliveries times without an Ack.
type DeadLetter struct {
	Topic      string    `json:"topic"`
	Offset     Offset    `json:"offset"`
	Time       time.Time `json:"time"`
	Consumer   string    `json:"consumer"` // "consumer NAME" or "group NAME"
	Deliveries int       `json:"deliveries"`
	Reason     string    `json:"reason"`
	Payload    []byte    `json:"payload"`
}

// ParseDeadLetter decodes a message of a dead-letter topic. Errors:
// ErrInvalid for a message that is no DeadLetter.
func ParseDeadLetter(m Message) (*DeadLetter, error) {
	var d DeadLetter
	if err := json.Unmarshal(m.Payload, &d); err != nil || d.Topic == "" {
		return nil, fmt.Errorf("%w: message %d of %s is not a dead letter", ErrInvalid, m.Offset, m.Topic)
	}
	return &d, nil
}

// deadLetterTopic is the topic a consumer's dead letters go to.
func deadLetterTopic(c consumerConfig, topic string) string {
	if c.deadLetter != "" {
		return c.deadLetter
	}
	return topic + "-dead-letter"
}

// deadLetterer returns what moves a message past MaxDeliveries to the
// dead-letter topic, then acknowledges it with ack. A failed publish
// leaves the message pending: it is tried again at its next deadline.
func (p *PubSub) deadLetterer(c consumerConfig, who string, ack func(context.Context, Message) error) func(context.Context, Message, int) {
	return func(ctx context.Context, m Message, deliveries int) {
		if p.publishDeadLetter(ctx, c, who, m, deliveries) == nil {
			ack(ctx, m)
		}
	}
}

// publishDeadLetter publishes m, delivered deliveries times without an Ack,
// to its dead-letter topic.
func (p *PubSub) publishDeadLetter(ctx context.Context, c consumerConfig, who string, m Message, deliveries int) error {
	d := DeadLetter{Topic: m.Topic, Offset: m.Offset, Time: m.Time, Consumer: who, Deliveries: deliveries,
		Reason: fmt.Sprintf("not acknowledged after %d deliveries", deliveries), Payload: m.Payload}
	b, _ := json.Marshal(d)
	// One dead letter per message and consumer, even when a publish of
	// unknown outcome is tried again, or two members race after a death.
	id := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d", who, m.Topic, m.Offset)))
	_, err := p.Publish(ctx, deadLetterTopic(c, m.Topic), b, WithMsgID(hex.EncodeToString(id[:])))
	return err
}
