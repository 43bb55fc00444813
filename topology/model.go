// Package topology declares RabbitMQ exchanges, queues, bindings, retry tiers and parking
// lots from a Go value or a YAML file of the same shape, and plans or applies it against a
// broker without ever deleting anything.
//
// The whole topology is validated before the broker is touched (Validate reports every
// problem at once, with file lines). Apply first checks every entity that already exists
// against the file, and creates nothing if any of them differs; Plan does the same checks
// and stops there. See README.md in this directory for the file format and the naming of
// retry tiers and parking lots.
package topology

import (
	"time"

	"github.com/syncworker/syncworker/internal/naming"
)

// Topology is the desired state: what Apply makes exist on the broker.
type Topology struct {
	Exchanges []Exchange
	Queues    []Queue
	Bindings  []Binding

	file string // the file it was parsed from, for messages; "" when built in Go
}

// ExchangeType is one of the four AMQP exchange kinds.
type ExchangeType string

// The exchange kinds this package declares.
const (
	Fanout  ExchangeType = "fanout"  // copies every message to every bound queue
	Topic   ExchangeType = "topic"   // routing-key patterns: words split by '.', '*' one word, '#' zero or more
	Direct  ExchangeType = "direct"  // routing key equals the binding key
	Headers ExchangeType = "headers" // message headers match the binding's headers (x-match)
)

// Exchange is one exchange. The zero values of the flags are the usual choice.
type Exchange struct {
	Name string
	Type ExchangeType
	// Durable survives a broker restart. nil means true.
	Durable *bool
	// AutoDelete deletes the exchange when its last binding is removed.
	AutoDelete bool
	// Internal exchanges accept messages only from other exchanges (exchange-to-exchange bindings).
	Internal bool
	// AlternateExchange receives messages this exchange cannot route (argument alternate-exchange).
	AlternateExchange string

	pos position
}

// QueueType is the RabbitMQ queue type.
type QueueType string

// Queue types. Quorum queues are replicated and durable; classic queues serve ephemeral
// (exclusive or auto-delete) subscribers.
const (
	Quorum  QueueType = "quorum"
	Classic QueueType = "classic"
)

// Overflow says what a full queue (MaxLength, MaxLengthBytes) does with a new message.
type Overflow string

// Overflow behaviours (argument x-overflow).
const (
	DropHead         Overflow = "drop-head"          // drop (or dead-letter) the oldest message
	RejectPublish    Overflow = "reject-publish"     // nack the publish
	RejectPublishDLX Overflow = "reject-publish-dlx" // nack and dead-letter the new message; classic only
)

// Queue is one queue, with the retry tiers and parking lot it asks for.
type Queue struct {
	Name string
	// Type defaults to Quorum.
	Type QueueType
	// Durable survives a broker restart. nil means true; quorum queues are always durable.
	Durable *bool
	// Exclusive queues belong to the declaring connection and vanish with it (classic only).
	Exclusive bool
	// AutoDelete queues are deleted when their last consumer goes away (classic only).
	AutoDelete bool
	// MaxLength and MaxLengthBytes bound the queue (0: unbounded); Overflow says what happens
	// when it is full (broker default drop-head).
	MaxLength      int64
	MaxLengthBytes int64
	Overflow       Overflow
	// MessageTTL expires messages older than this (0: never); whole milliseconds.
	MessageTTL time.Duration
	// SingleActiveConsumer delivers to one consumer at a time, keeping order with failover.
	SingleActiveConsumer bool
	// DeliveryLimit dead-letters a message after this many failed deliveries (quorum only;
	// 0: the broker's default, which is no limit on RabbitMQ 3.x and 20 on 4.x). With a parking
	// lot the message is parked rather than dropped; without one, on RabbitMQ 4 a message whose
	// consumers died or stopped holding it 20 times is dropped.
	DeliveryLimit int64
	// Retry asks for delay tiers and a parking lot; nil means none.
	Retry *Retry

	pos position
}

// Retry describes the retry tiers and parking lot of a consumer queue.
type Retry struct {
	// Delays are the waits before attempts 2, 3, ...: attempt n+1 waits Delays[n-1]. Each
	// delay is a queue named naming.RetryQueue(queue, delay). Strictly increasing.
	Delays []time.Duration
	// ParkingLot declares naming.ParkingLot(queue) for messages that ran out of attempts or
	// cannot be processed, and dead-letters the queue into it. nil means true.
	ParkingLot *bool

	pos position
}

// Match is the x-match mode of a headers binding.
type Match string

// Header match modes. The -with-x variants also compare headers whose names start with
// "x-" (RabbitMQ 3.10+); the plain ones ignore them.
const (
	MatchAll      Match = "all"
	MatchAny      Match = "any"
	MatchAllWithX Match = "all-with-x"
	MatchAnyWithX Match = "any-with-x"
)

// Binding routes messages from Exchange to Queue, or to ToExchange (exactly one of the two).
type Binding struct {
	Exchange   string
	Queue      string
	ToExchange string
	// RoutingKey is the binding key: a pattern for topic exchanges, an exact key for direct
	// ones; empty (and unused) for fanout and headers exchanges.
	RoutingKey string
	// Match and Headers apply to headers exchanges. Match defaults to MatchAll. Header values
	// are strings, int64, float64 or bool and compare by value.
	Match   Match
	Headers map[string]any

	pos position
}

// RetryTier is one delay tier of a queue.
type RetryTier struct {
	Delay time.Duration
	Queue string // naming.RetryQueue(queue, Delay)
}

// RetryTiers lists the queue's delay tiers in attempt order; nil when it has none.
func (q Queue) RetryTiers() []RetryTier {
	if q.Retry == nil || len(q.Retry.Delays) == 0 {
		return nil
	}
	tiers := make([]RetryTier, 0, len(q.Retry.Delays))
	for _, d := range q.Retry.Delays {
		tiers = append(tiers, RetryTier{Delay: d, Queue: naming.RetryQueue(q.Name, d)})
	}
	return tiers
}

// ParkingLot names the queue's parking lot, or returns "" when it has none.
func (q Queue) ParkingLot() string {
	if q.Retry == nil || (q.Retry.ParkingLot != nil && !*q.Retry.ParkingLot) {
		return ""
	}
	return naming.ParkingLot(q.Name)
}

// Queue finds a queue of the topology by name.
func (t *Topology) Queue(name string) (Queue, bool) {
	for _, q := range t.Queues {
		if q.Name == name {
			return q, true
		}
	}
	return Queue{}, false
}

// Bool returns a pointer to b, for the optional flags (Durable, ParkingLot).
func Bool(b bool) *bool { return &b }

func (x Exchange) durable() bool { return x.Durable == nil || *x.Durable }
func (q Queue) durable() bool    { return q.Durable == nil || *q.Durable }

func (q Queue) queueType() QueueType {
	if q.Type == "" {
		return Quorum
	}
	return q.Type
}

func (b Binding) match() Match {
	if b.Match == "" {
		return MatchAll
	}
	return b.Match
}

// position remembers where an entity and its fields were in the file, for messages.
type position struct {
	line   int
	fields map[string]int
}

// at returns the line of field, or of the entity when the field was not written.
func (p position) at(field string) int {
	if l, ok := p.fields[field]; ok {
		return l
	}
	return p.line
}
