package outbox

import (
	"context"
	"database/sql"
	"testing"
)

// discardExecer accepts every statement without a database, so the benchmark measures only
// what Write itself costs the caller's transaction.
type discardExecer struct{}

func (discardExecer) ExecContext(context.Context, string, ...any) (sql.Result, error) {
	return nil, nil
}

func BenchmarkWrite10(b *testing.B) {
	payload := make([]byte, 256)
	msgs := make([]Message, 10)
	for i := range msgs {
		msgs[i] = Message{Exchange: "orders", RoutingKey: "order.created", Type: "order.created",
			AggregateType: "order", PartitionKey: "order-42", Payload: payload}
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := Write(ctx, discardExecer{}, msgs...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWrite10Headers is BenchmarkWrite10 with three headers a message and a trace context.
func BenchmarkWrite10Headers(b *testing.B) {
	payload := make([]byte, 256)
	msgs := make([]Message, 10)
	for i := range msgs {
		msgs[i] = Message{Exchange: "orders", RoutingKey: "order.created", Type: "order.created",
			AggregateType: "order", PartitionKey: "order-42", Payload: payload,
			Headers: map[string]string{"tenant": "acme", "source": "checkout", "schema": "v2"}}
	}
	ctx := ContextWithTraceContext(context.Background(), TraceContext{
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	b.ReportAllocs()
	for b.Loop() {
		if err := Write(ctx, discardExecer{}, msgs...); err != nil {
			b.Fatal(err)
		}
	}
}
