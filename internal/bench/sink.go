package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/amqpx"
)

// sink is the receiving end shared by the broker scenarios: a direct exchange bound to a
// durable quorum queue (what topology declares by default) and a consumer draining it,
// recording when each distinct message id first arrived.
type sink struct {
	Exchange, Queue, RoutingKey string

	conn  *amqp.Connection
	mu    sync.Mutex
	seen  map[string]time.Time
	first time.Time // first arrival
	last  time.Time // latest first arrival of an id
	dups  int
	want  int
	done  chan struct{}
}

// newSink declares the exchange and queue (names made unique with suffix) and starts consuming.
func newSink(ctx context.Context, url, suffix string, want int) (*sink, error) {
	conn, err := amqpx.Dial(amqpx.DialConfig{URL: url, Name: "syncworker-bench-sink"})
	if err != nil {
		return nil, err
	}
	s := &sink{
		Exchange: "syncworker.bench." + suffix, Queue: "syncworker.bench." + suffix, RoutingKey: "bench",
		conn: conn, seen: make(map[string]time.Time, want), want: want, done: make(chan struct{}),
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := ch.ExchangeDeclare(s.Exchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("declare bench exchange: %w", err)
	}
	if _, err := ch.QueueDeclare(s.Queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("declare bench queue: %w", err)
	}
	if err := ch.QueueBind(s.Queue, s.RoutingKey, s.Exchange, false, nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("bind bench queue: %w", err)
	}
	if err := ch.Qos(2000, 0, false); err != nil {
		conn.Close()
		return nil, err
	}
	deliveries, err := ch.ConsumeWithContext(ctx, s.Queue, "", false, false, false, false, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("consume bench queue: %w", err)
	}
	go s.drain(ch, deliveries)
	return s, nil
}

func (s *sink) drain(ch *amqp.Channel, deliveries <-chan amqp.Delivery) {
	n := 0
	for d := range deliveries {
		now := time.Now()
		s.mu.Lock()
		if _, dup := s.seen[d.MessageId]; dup {
			s.dups++
		} else {
			s.seen[d.MessageId] = now
			if s.first.IsZero() {
				s.first = now
			}
			s.last = now
			if len(s.seen) == s.want {
				close(s.done)
			}
		}
		s.mu.Unlock()
		if n++; n%500 == 0 {
			ch.Ack(d.DeliveryTag, true) //nolint:errcheck // a lost ack only redelivers to the sink
		}
		_ = d
	}
}

// Wait blocks until want distinct ids arrived or ctx ends.
func (s *sink) Wait(ctx context.Context) error {
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		return fmt.Errorf("sink received %d of %d messages: %w", len(s.seen), s.want, ctx.Err())
	}
}

// Received returns the arrival time of id.
func (s *sink) Received(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.seen[id]
	return t, ok
}

// Span returns when the first and the last distinct id arrived.
func (s *sink) Span() (first, last time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, s.last
}

// Count returns how many distinct ids arrived.
func (s *sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// Close deletes the exchange and queue and closes the connection.
func (s *sink) Close() {
	if ch, err := s.conn.Channel(); err == nil {
		ch.QueueDelete(s.Queue, false, false, false) //nolint:errcheck // best effort cleanup
		ch.ExchangeDelete(s.Exchange, false, false)  //nolint:errcheck // best effort cleanup
	}
	s.conn.Close()
}
