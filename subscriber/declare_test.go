package subscriber

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/naming"
	"github.com/syncworker/syncworker/internal/testenv"
)

// declareQueue declares what topology will declare for a consumer queue q: q itself (quorum,
// dead-lettering to its parking lot), one delay tier per delay (messages wait there for the
// delay, then dead-letter back to q through the default exchange), and the parking lot.
// To be replaced by topology.Apply once that package exists.
func declareQueue(t *testing.T, b *testenv.Broker, q string, delays []time.Duration) {
	t.Helper()
	ch := b.Channel()
	b.Track(q, naming.ParkingLot(q))
	if _, err := ch.QueueDeclare(naming.ParkingLot(q), true, false, false, false,
		amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatalf("declare parking lot: %v", err)
	}
	for _, d := range delays {
		tier := naming.RetryQueue(q, d)
		b.Track(tier)
		// As topology declares them: quorum, with at-least-once dead-lettering back to q.
		if _, err := ch.QueueDeclare(tier, true, false, false, false, amqp.Table{
			"x-queue-type":              "quorum",
			"x-message-ttl":             d.Milliseconds(),
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": q,
			"x-dead-letter-strategy":    "at-least-once",
			"x-overflow":                "reject-publish",
		}); err != nil {
			t.Fatalf("declare retry tier %s: %v", tier, err)
		}
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{
		"x-queue-type":              "quorum",
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": naming.ParkingLot(q),
	}); err != nil {
		t.Fatalf("declare queue %s: %v", q, err)
	}
}
