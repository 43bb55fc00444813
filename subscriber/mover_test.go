package subscriber

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestMoveForChoosesTierOrParkingLot(t *testing.T) {
	t.Parallel()
	s, err := New(&sql.DB{}, Config{AMQPURL: "amqp://x", Queue: "q", ConsumerName: "c", MaxAttempts: 5,
		RetryDelays: []time.Duration{time.Second, 10 * time.Second},
		Handler:     func(context.Context, *sql.Tx, Message) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var got []string
	headers := amqp.Table{"user": "kept"}
	for i := 0; i < 5; i++ {
		d := amqp.Delivery{MessageId: "m", Exchange: fmt.Sprint("x", i), RoutingKey: "rk", Headers: headers, Body: []byte("b")}
		mv, parked, attempts := s.moveFor(&d, errors.New("boom"), now)
		if attempts != i+1 || parked != (i == 4) {
			t.Fatalf("failure %d: attempts %d parked %v", i+1, attempts, parked)
		}
		got = append(got, mv.queue)
		headers = mv.pub.Headers
	}
	if strings.Join(got, " ") != "q.retry.1s q.retry.10s q.retry.10s q.retry.10s q.parked" {
		t.Errorf("route = %v", got)
	}
	if headers["user"] != "kept" || headers[HeaderOriginalExchange] != "x0" || headers[HeaderAttempts] != int64(5) ||
		headers[HeaderFailedAt] != "2026-01-02T03:04:05Z" || headers[HeaderConsumer] != "c" {
		t.Errorf("headers after five failures = %v", headers)
	}

	d := amqp.Delivery{MessageId: "m", Type: "t", ContentType: "application/json", ContentEncoding: "gzip", Priority: 3,
		CorrelationId: "c1", ReplyTo: "answers", Timestamp: now, AppId: "app", Expiration: "60000", UserId: "someone", Body: []byte("b")}
	kept := amqp.Publishing{MessageId: "m", Type: "t", ContentType: "application/json", ContentEncoding: "gzip", Priority: 3,
		CorrelationId: "c1", ReplyTo: "answers", Timestamp: now, AppId: "app", DeliveryMode: amqp.Persistent, Body: []byte("b")}
	if mv, _, _ := s.moveFor(&d, errors.New("boom"), now); fmt.Sprint(withoutHeaders(mv.pub)) != fmt.Sprint(kept) {
		t.Errorf("moved message's properties = %+v, want %+v (no expiration, no user-id, persistent)", withoutHeaders(mv.pub), kept)
	}
	if mv, parked, _ := s.moveFor(&d, fmt.Errorf("bad: %w", ErrPermanent), now); !parked || mv.queue != "q.parked" {
		t.Errorf("permanent error went to %s", mv.queue)
	}
	long := strings.Repeat("é", MaxErrorBytes)
	mv, _, _ := s.moveFor(&d, errors.New(long), now)
	if text := mv.pub.Headers[HeaderError].(string); len(text) > MaxErrorBytes || !strings.HasPrefix(long, text) {
		t.Errorf("error text not truncated on a rune boundary: %d bytes", len(text))
	}
}

func withoutHeaders(p amqp.Publishing) amqp.Publishing {
	p.Headers = nil
	return p
}

// The broker's per-copy counts of the delivery being moved are not carried into the tier or the
// parking lot: RabbitMQ 4 delivers a published x-delivery-count unchanged on the new copy's first
// delivery (measured on 4.3.6: a message moved after 5 redeliveries came back from its tier
// with x-delivery-count 5, though the broker counted it from 0 again). The x-death record stays.
func TestMoveForDropsTheBrokersDeliveryCounts(t *testing.T) {
	t.Parallel()
	s, err := New(&sql.DB{}, Config{AMQPURL: "amqp://x", Queue: "q", ConsumerName: "c",
		Handler: func(context.Context, *sql.Tx, Message) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	death := []any{amqp.Table{"queue": "q.retry.1s", "reason": "expired"}}
	d := amqp.Delivery{MessageId: "m", Headers: amqp.Table{"x-delivery-count": int64(5), "x-acquired-count": int64(5),
		"x-death": death, "user": "kept"}}
	mv, _, _ := s.moveFor(&d, errors.New("boom"), time.Now())
	if _, ok := mv.pub.Headers["x-delivery-count"]; ok {
		t.Errorf("moved with x-delivery-count: %v", mv.pub.Headers)
	}
	if _, ok := mv.pub.Headers["x-acquired-count"]; ok {
		t.Errorf("moved with x-acquired-count: %v", mv.pub.Headers)
	}
	if mv.pub.Headers["user"] != "kept" || mv.pub.Headers["x-death"] == nil {
		t.Errorf("moved without the other headers: %v", mv.pub.Headers)
	}
}
