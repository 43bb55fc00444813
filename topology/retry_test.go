package topology

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/testenv"
)

// TestDelayTierReturnsMessage dead-letters a message into a delay tier and expects it back
// in its queue after the TTL, headers intact and with the broker's x-death record.
func TestDelayTierReturnsMessage(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	top := parseFor(t, b, `
queues:
  - name: work
    retry: {delays: [300ms, 1m]}
`)
	apply(t, b, top)
	q, _ := top.Queue(b.Prefix + "work")
	tier := q.RetryTiers()[0]
	if want := q.Name + ".retry.300ms"; tier.Queue != want {
		t.Fatalf("tier queue %q, want %q", tier.Queue, want)
	}

	// Tiers are reached through the default exchange with their name as routing key.
	newPublisher(t, b).publish("", tier.Queue, "m1", amqp.Table{"attempt": int32(2), "tenant": "acme"})

	ch := b.Channel()
	var d amqp.Delivery
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		var ok bool
		d, ok = get(t, ch, q.Name)
		return ok, fmt.Sprintf("message not back in %s", q.Name)
	})
	if d.MessageId != "m1" || d.Headers["tenant"] != "acme" || d.Headers["attempt"] != int32(2) {
		t.Errorf("message came back as id %q headers %v; want m1 with attempt=2 tenant=acme", d.MessageId, d.Headers)
	}
	deaths, _ := d.Headers["x-death"].([]any)
	if len(deaths) != 1 {
		t.Fatalf("x-death = %v, want one record", d.Headers["x-death"])
	}
	death, _ := deaths[0].(amqp.Table)
	if death["queue"] != tier.Queue || death["reason"] != "expired" {
		t.Errorf("x-death record %v, want queue %s reason expired", death, tier.Queue)
	}
	if st, _ := queueExists(t, b, tier.Queue); st.Messages != 0 {
		t.Errorf("tier still holds %d messages", st.Messages)
	}
}

// TestQueueDeadLettersToParkingLot checks that the broker parks what it dead-letters from a
// consumer queue: a rejected message, and one that exceeded the delivery limit because every
// consumer that got it died holding it (its channel closed without an ack). That is what the
// limit is for: a basic.nack with requeue counts as a delivery on RabbitMQ 3 but not on 4.3.
func TestQueueDeadLettersToParkingLot(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	top := parseFor(t, b, `
queues:
  - name: work
    delivery_limit: 1
    retry: {parking_lot: true}
`)
	apply(t, b, top)
	q, _ := top.Queue(b.Prefix + "work")
	pub := newPublisher(t, b)
	ch := b.Channel()

	reasons := map[string]string{}
	park := func(id string, fail func(consumer *amqp.Channel, d amqp.Delivery)) {
		pub.publish("", q.Name, id, amqp.Table{"k": "v"})
		testenv.Eventually(t, 10*time.Second, func() (bool, string) {
			consumer := b.Channel()
			if d, ok, err := consumer.Get(q.Name, false); err != nil {
				t.Fatalf("get: %v", err)
			} else if ok {
				fail(consumer, d)
			}
			p, ok := get(t, ch, q.ParkingLot())
			if ok {
				deaths, _ := p.Headers["x-death"].([]any)
				if len(deaths) > 0 {
					death, _ := deaths[0].(amqp.Table)
					reasons[p.MessageId], _ = death["reason"].(string)
				}
			}
			return ok, fmt.Sprintf("%s not parked in %s", id, q.ParkingLot())
		})
	}
	park("rejected", func(_ *amqp.Channel, d amqp.Delivery) { d.Reject(false) })
	park("crashes-consumers", func(consumer *amqp.Channel, _ amqp.Delivery) { consumer.Close() })
	if reasons["rejected"] != "rejected" || reasons["crashes-consumers"] != "delivery_limit" {
		t.Errorf("parked with x-death reasons %v; want rejected and delivery_limit", reasons)
	}
}

// A parking lot carries its own delivery limit, so RabbitMQ 4's default of 20 for quorum queues
// cannot drop parked messages that `dlq list` handed back again and again.
func TestParkingLotHasItsOwnDeliveryLimit(t *testing.T) {
	top := &Topology{Queues: []Queue{{Name: "orders", Retry: &Retry{Delays: []time.Duration{time.Second}}}}}
	if err := top.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, q := range top.declarations().queues {
		if q.name == "orders.parked" {
			if got := q.args["x-delivery-limit"]; got != parkingLotDeliveryLimit {
				t.Fatalf("parking lot x-delivery-limit = %v, want %d", got, parkingLotDeliveryLimit)
			}
			return
		}
	}
	t.Fatal("no parking lot declared")
}
