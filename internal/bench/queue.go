package bench

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/topology"
)

// subscriberQueue is a consumer queue declared by topology the way a deployment declares it
// (quorum queue, one retry tier, parking lot) behind a fanout exchange, for the scenarios
// that run a subscriber.
type subscriberQueue struct {
	Exchange, Queue string
	Delays          []time.Duration

	conn  *amqp.Connection
	names []string // queues to delete
}

func newSubscriberQueue(ctx context.Context, url, suffix string) (*subscriberQueue, error) {
	conn, err := amqpx.Dial(amqpx.DialConfig{URL: url, Name: "syncworker-bench-topology"})
	if err != nil {
		return nil, err
	}
	q := &subscriberQueue{Exchange: "syncworker.bench." + suffix, Queue: "syncworker.bench." + suffix,
		Delays: []time.Duration{time.Second}, conn: conn}
	top := &topology.Topology{
		Exchanges: []topology.Exchange{{Name: q.Exchange, Type: topology.Fanout}},
		Queues:    []topology.Queue{{Name: q.Queue, Retry: &topology.Retry{Delays: q.Delays}}},
		Bindings:  []topology.Binding{{Exchange: q.Exchange, Queue: q.Queue}},
	}
	q.names = append(q.names, q.Queue, top.Queues[0].ParkingLot())
	for _, tier := range top.Queues[0].RetryTiers() {
		q.names = append(q.names, tier.Queue)
	}
	if _, err := topology.Apply(ctx, conn, top); err != nil {
		q.Close()
		return nil, fmt.Errorf("declare bench topology: %w", err)
	}
	return q, nil
}

// Close deletes the queues and the exchange.
func (q *subscriberQueue) Close() {
	if ch, err := q.conn.Channel(); err == nil {
		for _, name := range q.names {
			ch.QueueDelete(name, false, false, false) //nolint:errcheck // best effort cleanup
		}
		ch.ExchangeDelete(q.Exchange, false, false) //nolint:errcheck // best effort cleanup
	}
	q.conn.Close()
}
