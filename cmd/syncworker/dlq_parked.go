package main

import (
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/subscriber"
)

// parkedMessage is what the dlq commands read from a parked message. Two paths lead to the
// parking lot: the subscriber publishes a message there with its sw- headers, and the broker
// dead-letters one from the consumer queue (its delivery limit reached, which RabbitMQ 4 sets
// to 20 by default: consumers that died or stopped holding it; or a reject without requeue)
// with an x-death record naming the queue, the reason and the exchange and routing keys the
// message had reached the queue with.
type parkedMessage struct {
	attempts, failedAt, consumer, reason string
	// exchange and routingKey are where to replay it; known says whether either path told.
	exchange, routingKey string
	known                bool
}

// describe reads d's headers; queue is the consumer queue whose parking lot d is in.
func describe(d *amqp.Delivery, queue string) parkedMessage {
	h := d.Headers
	p := parkedMessage{attempts: headerString(h, subscriber.HeaderAttempts), failedAt: headerString(h, subscriber.HeaderFailedAt),
		consumer: headerString(h, subscriber.HeaderConsumer), reason: headerString(h, subscriber.HeaderError)}
	exchange, okE := h[subscriber.HeaderOriginalExchange].(string)
	key, okK := h[subscriber.HeaderOriginalRoutingKey].(string)
	if okE && okK {
		p.exchange, p.routingKey, p.known = exchange, key, true
	}
	deaths := deathRecords(h)
	for i, r := range deaths {
		if r.queue != queue {
			continue
		}
		if !p.known && len(r.routingKeys) > 0 {
			p.exchange, p.routingKey, p.known = r.exchange, r.routingKeys[0], true
		}
		// The broker's records come most recent first. Its parking is the latest news unless
		// the subscriber parked the message after it (a record kept through a replay by an
		// older syncworker): x-death times have whole seconds.
		failed, err := time.Parse(time.RFC3339Nano, p.failedAt)
		if i == 0 && (err != nil || !r.time.Before(failed.Truncate(time.Second))) {
			reason := fmt.Sprintf("dead-lettered by the broker from %s: %s", queue, r.reason)
			if p.reason != "" {
				reason += "; last handler error: " + p.reason
			}
			p.reason, p.failedAt = reason, r.time.UTC().Format(time.RFC3339)
		}
		break
	}
	return p
}

// deathRecord is one entry of the broker's x-death header.
type deathRecord struct {
	queue, reason, exchange string
	routingKeys             []string
	time                    time.Time
}

func deathRecords(h amqp.Table) []deathRecord {
	list, _ := h["x-death"].([]any)
	var out []deathRecord
	for _, e := range list {
		t, ok := e.(amqp.Table)
		if !ok {
			continue
		}
		r := deathRecord{queue: headerString(t, "queue"), reason: headerString(t, "reason"), exchange: headerString(t, "exchange")}
		r.time, _ = t["time"].(time.Time)
		keys, _ := t["routing-keys"].([]any)
		for _, k := range keys {
			if s, ok := k.(string); ok {
				r.routingKeys = append(r.routingKeys, s)
			}
		}
		out = append(out, r)
	}
	return out
}
