package topology

import (
	"context"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/testenv"
)

// parseFor parses a YAML topology and gives every exchange and queue (except amq.*) the
// test's random prefix, tracking them and their derived queues for deletion.
func parseFor(t *testing.T, b *testenv.Broker, yamlText string) *Topology {
	t.Helper()
	top, err := Parse([]byte(yamlText), "test.yaml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	prefix(b, top)
	return top
}

func prefix(b *testenv.Broker, top *Topology) {
	p := func(name string) string {
		if name == "" || strings.HasPrefix(name, "amq.") {
			return name
		}
		return b.Name(name)
	}
	for i := range top.Exchanges {
		x := &top.Exchanges[i]
		x.Name, x.AlternateExchange = p(x.Name), p(x.AlternateExchange)
	}
	for i := range top.Queues {
		q := &top.Queues[i]
		q.Name = p(q.Name)
		for _, tier := range q.RetryTiers() {
			b.Track(tier.Queue)
		}
		if pl := q.ParkingLot(); pl != "" {
			b.Track(pl)
		}
	}
	for i := range top.Bindings {
		bd := &top.Bindings[i]
		bd.Exchange, bd.Queue, bd.ToExchange = p(bd.Exchange), p(bd.Queue), p(bd.ToExchange)
	}
}

func apply(t *testing.T, b *testenv.Broker, top *Topology) *ApplyResult {
	t.Helper()
	res, err := Apply(context.Background(), b.Conn, top)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

// queueExists asks the broker with a passive declare on a channel of its own.
func queueExists(t *testing.T, b *testenv.Broker, name string) (amqp.Queue, bool) {
	t.Helper()
	var q amqp.Queue
	err := onChannel(b.Conn, func(ch *amqp.Channel) (err error) {
		q, err = ch.QueueDeclarePassive(name, false, false, false, false, nil)
		return err
	})
	if err != nil && amqpCode(err) != amqp.NotFound {
		t.Fatalf("passive declare %s: %v", name, err)
	}
	return q, err == nil
}

func exchangeExists(t *testing.T, b *testenv.Broker, name string) bool {
	t.Helper()
	err := onChannel(b.Conn, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclarePassive(name, "topic", false, false, false, false, nil)
	})
	if err != nil && amqpCode(err) != amqp.NotFound {
		t.Fatalf("passive declare %s: %v", name, err)
	}
	return err == nil
}

// publisher publishes with confirms, so a confirmed message is already in every queue it
// was routed to.
type publisher struct {
	t  *testing.T
	ch *amqp.Channel
}

func newPublisher(t *testing.T, b *testenv.Broker) *publisher {
	ch := b.Channel()
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm mode: %v", err)
	}
	return &publisher{t: t, ch: ch}
}

func (p *publisher) publish(exchange, key, id string, headers amqp.Table) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false,
		amqp.Publishing{MessageId: id, Headers: headers, Body: []byte(id)})
	if err != nil {
		p.t.Fatalf("publish %s: %v", id, err)
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		p.t.Fatalf("publish %s: confirmed=%v err=%v", id, ok, err)
	}
}

// get takes one message from queue, acking it; ok is false when the queue is empty.
func get(t *testing.T, ch *amqp.Channel, queue string) (amqp.Delivery, bool) {
	t.Helper()
	d, ok, err := ch.Get(queue, true)
	if err != nil {
		t.Fatalf("get from %s: %v", queue, err)
	}
	return d, ok
}
