package subscriber

import (
	"fmt"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
)

// A batch's acks leave in one socket write (amqpx.CorkConn), and every one of them reaches the
// broker: after the subscriber stops, nothing is left in the queue to redeliver.
func TestBatchAcksLeaveTogether(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const total = 400
	ids := make([]string, total)
	for i := range ids {
		ids[i] = fmt.Sprintf("m-%d", i)
		f.publish(ids[i], fmt.Sprintf("k-%d", i%16), "test", []byte("x"))
	}
	var sock testenv.WriteCounter
	_, stop := f.start(f.db.DB, f.config(recordHandler), func(s *Subscriber) { s.testWrapConn = sock.Wrap })
	f.waitApplied(ids, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// One write per ack without holding them back; the bound leaves room for the handshake,
	// channel setup, heartbeats and batches smaller than BatchSize.
	if n := sock.Writes(); n > total/4 {
		t.Errorf("%d socket writes to consume %d messages, want at most %d", n, total, total/4)
	} else {
		t.Logf("%d socket writes to consume %d messages", n, total)
	}
	q, err := f.broker.Channel().QueueDeclarePassive(f.queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != 0 {
		t.Errorf("%d messages back in the queue after the subscriber stopped: their acks never left", q.Messages)
	}
}
