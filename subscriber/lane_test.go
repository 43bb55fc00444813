package subscriber

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestTakeWithoutFlushReturnsWhatIsQueuedAtOnce(t *testing.T) {
	q := newLaneQueue()
	q.push(amqp.Delivery{DeliveryTag: 1})
	q.push(amqp.Delivery{DeliveryTag: 2})
	batch := q.take(32, 0)
	if len(batch) != 2 || batch[0].DeliveryTag != 1 || batch[1].DeliveryTag != 2 {
		t.Fatalf("took %v, want deliveries 1 and 2 in order", batch)
	}
	var c Config
	c.setDefaults()
	if c.FlushInterval != 0 {
		t.Fatalf("default FlushInterval is %s; a lone message would wait for it", c.FlushInterval)
	}
}

func TestTakeWithFlushWaitsForTheBatchToFill(t *testing.T) {
	q := newLaneQueue()
	q.push(amqp.Delivery{DeliveryTag: 1})
	go func() {
		time.Sleep(20 * time.Millisecond)
		q.push(amqp.Delivery{DeliveryTag: 2})
		q.push(amqp.Delivery{DeliveryTag: 3})
	}()
	// An hour of flush interval: only the batch reaching max ends the wait.
	if batch := q.take(3, time.Hour); len(batch) != 3 {
		t.Fatalf("took %d deliveries, want the full batch of 3", len(batch))
	}
	q.push(amqp.Delivery{DeliveryTag: 4})
	if batch := q.take(3, 10*time.Millisecond); len(batch) != 1 || batch[0].DeliveryTag != 4 {
		t.Fatalf("after the flush interval took %v, want delivery 4 alone", batch)
	}
}

func TestTakeReturnsNilOnceClosed(t *testing.T) {
	q := newLaneQueue()
	q.push(amqp.Delivery{DeliveryTag: 1})
	q.close()
	if batch := q.take(32, 0); batch != nil {
		t.Fatalf("took %v from a closed queue", batch)
	}
	done := make(chan []amqp.Delivery)
	q2 := newLaneQueue()
	go func() { done <- q2.take(32, time.Hour) }()
	time.Sleep(10 * time.Millisecond)
	q2.close()
	if batch := <-done; batch != nil {
		t.Fatalf("a take waiting on an empty queue returned %v when it closed", batch)
	}
}
