package subscriber

import (
	"fmt"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/outbox"
)

// Headers the subscriber adds when it moves a failed message to a retry tier or the parking
// lot. They are part of the format operators and replay tools read.
const (
	// HeaderAttempts is the number of attempts that failed so far (an integer).
	HeaderAttempts = "sw-attempts"
	// HeaderError is the text of the last failure (truncated to MaxErrorBytes).
	HeaderError = "sw-error"
	// HeaderFailedAt is when the last attempt failed, RFC 3339 with nanoseconds, UTC.
	HeaderFailedAt = "sw-failed-at"
	// HeaderOriginalExchange and HeaderOriginalRoutingKey say where the message was first
	// published; set on the first failure and kept through later ones, so a parked message can
	// be replayed to where it came from.
	HeaderOriginalExchange   = "sw-original-exchange"
	HeaderOriginalRoutingKey = "sw-original-routing-key"
	// HeaderConsumer names the consumer (Config.ConsumerName) whose handler failed.
	HeaderConsumer = "sw-consumer"
)

// MaxErrorBytes bounds the HeaderError text.
const MaxErrorBytes = 1024

// Message is one delivery as the handler sees it.
type Message struct {
	ID            string // AMQP message_id: the outbox message id, the inbox key
	Type          string // AMQP type: the event type
	ContentType   string
	CorrelationID string
	Timestamp     time.Time
	// PartitionKey is the sw-partition-key header (the aggregate id), empty when absent.
	PartitionKey string
	// AggregateType is the sw-aggregate-type header.
	AggregateType string
	// Headers are the AMQP headers; values are as the broker delivered them (string, int64,
	// ...; see amqp091 Table).
	Headers amqp.Table
	// Payload is the message body, unchanged.
	Payload []byte
	// Exchange and RoutingKey the delivery arrived through (a retried message arrives through
	// the default exchange; see HeaderOriginalExchange).
	Exchange   string
	RoutingKey string
	// Attempt is this attempt's number, 1 for the first.
	Attempt int
	// Redelivered is the broker's flag: an earlier delivery of this copy was not acked.
	Redelivered bool
}

// decodeDelivery turns a delivery into a Message, or says why it cannot.
func decodeDelivery(d *amqp.Delivery) (Message, error) {
	if d.MessageId == "" {
		return Message{}, fmt.Errorf("%w: no message_id property", ErrUndecodable)
	}
	return Message{
		ID:            d.MessageId,
		Type:          d.Type,
		ContentType:   d.ContentType,
		CorrelationID: d.CorrelationId,
		Timestamp:     d.Timestamp,
		PartitionKey:  headerString(d.Headers, outbox.HeaderPartitionKey),
		AggregateType: headerString(d.Headers, outbox.HeaderAggregateType),
		Headers:       d.Headers,
		Payload:       d.Body,
		Exchange:      d.Exchange,
		RoutingKey:    d.RoutingKey,
		Attempt:       failedAttempts(d.Headers) + 1,
		Redelivered:   d.Redelivered,
	}, nil
}

// orderKey chooses the lane: the partition key, else the message id (no ordering relation).
func orderKey(d *amqp.Delivery) string {
	if k := headerString(d.Headers, outbox.HeaderPartitionKey); k != "" {
		return k
	}
	return d.MessageId
}

func headerString(h amqp.Table, name string) string {
	switch v := h[name].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

// failedAttempts reads HeaderAttempts, accepting any integer type the broker may use.
func failedAttempts(h amqp.Table) int {
	var n int64
	switch v := h[HeaderAttempts].(type) {
	case int8:
		n = int64(v)
	case int16:
		n = int64(v)
	case int32:
		n = int64(v)
	case int64:
		n = v
	case int:
		n = int64(v)
	case uint8:
		n = int64(v)
	case uint16:
		n = int64(v)
	case uint32:
		n = int64(v)
	case string:
		n, _ = strconv.ParseInt(v, 10, 64)
	}
	return int(max(0, min(n, 1<<30)))
}
