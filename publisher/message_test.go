package publisher

import (
	"bytes"
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/outbox"
)

// A row goes out as a plain persistent AMQP message: properties and headers from the row, the
// payload byte for byte.
func TestMessageFormat(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	cfg := e.config()
	cfg.AppID = "orders-relay"
	e.start(cfg)
	payload := []byte{0, 1, 2, 0xff, '{', '}'} // not even UTF-8: nothing may touch it
	ctx := outbox.ContextWithTraceContext(context.Background(), outbox.TraceContext{
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	tx, err := e.db.DB.Begin()
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second).Truncate(time.Second)
	if err := outbox.Write(ctx, tx, outbox.Message{ID: "fmt-1", Exchange: outbox.DefaultExchange, RoutingKey: e.queue,
		PartitionKey: "order-42", Type: "order.created", AggregateType: "order", ContentType: "application/octet-stream",
		CorrelationID: "corr-7", Headers: map[string]string{"tenant": "acme"}, Payload: payload}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	e.waitAll(c, map[string]bool{"fmt-1": true}, 30*time.Second)
	c.mu.Lock()
	d := c.last["fmt-1"]
	c.mu.Unlock()
	if !bytes.Equal(d.Body, payload) {
		t.Errorf("payload %x, want %x", d.Body, payload)
	}
	if d.DeliveryMode != amqp.Persistent || d.Type != "order.created" || d.ContentType != "application/octet-stream" ||
		d.CorrelationId != "corr-7" || d.AppId != "orders-relay" || d.MessageId != "fmt-1" {
		t.Errorf("properties: mode %d type %q content %q correlation %q app %q id %q", d.DeliveryMode, d.Type,
			d.ContentType, d.CorrelationId, d.AppId, d.MessageId)
	}
	if d.Timestamp.Before(before) || d.Timestamp.After(time.Now().Add(time.Second)) {
		t.Errorf("timestamp %s, want the write time", d.Timestamp)
	}
	want := amqp.Table{outbox.HeaderPartitionKey: "order-42", outbox.HeaderAggregateType: "order", "tenant": "acme",
		outbox.HeaderTraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	for k, v := range want {
		if d.Headers[k] != v {
			t.Errorf("header %s = %v, want %v", k, d.Headers[k], v)
		}
	}
	if len(d.Headers) != len(want) {
		t.Errorf("headers %v, want exactly %v", d.Headers, want)
	}
}
