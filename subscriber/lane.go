package subscriber

import (
	"context"
	"hash/fnv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func laneOf(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key)) //nolint:errcheck // hash writes cannot fail
	return int(h.Sum32() % uint32(n))
}

// laneQueue is one lane's FIFO of deliveries. It grows as needed instead of being allocated
// for the worst case: all lanes together never hold more than Prefetch deliveries (the broker
// sends no more unacked), and pushing never blocks, so a slow lane cannot stall the others.
type laneQueue struct {
	mu     sync.Mutex
	items  []amqp.Delivery
	closed bool
	signal chan struct{} // capacity 1: "something changed"
}

func newLaneQueue() *laneQueue { return &laneQueue{signal: make(chan struct{}, 1)} }

func (q *laneQueue) push(d amqp.Delivery) {
	q.mu.Lock()
	q.items = append(q.items, d)
	q.mu.Unlock()
	q.notify()
}

// close ends the queue: deliveries not yet taken are dropped unacked (the broker hands them
// back when the connection closes) and take returns nil from now on. A batch already taken
// is finished by its lane.
func (q *laneQueue) close() {
	q.mu.Lock()
	q.closed = true
	clear(q.items)
	q.items = nil
	q.mu.Unlock()
	q.notify()
}

func (q *laneQueue) notify() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// state returns how many deliveries are queued and whether the queue is closed.
func (q *laneQueue) state() (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items), q.closed
}

// take waits for a delivery, then up to flush (if positive) for the batch to reach max, and
// returns up to max deliveries in order. It returns nil once the queue is closed.
func (q *laneQueue) take(max int, flush time.Duration) []amqp.Delivery {
	for {
		n, closed := q.state()
		if n > 0 {
			break
		}
		if closed {
			return nil
		}
		<-q.signal
	}
	if flush > 0 {
		q.fill(max, flush)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(max, len(q.items))
	if n == 0 { // closed while the batch was filling
		return nil
	}
	batch := make([]amqp.Delivery, n)
	copy(batch, q.items)
	clear(q.items[:n]) // drop references to the bodies handed out
	q.items = q.items[n:]
	if len(q.items) == 0 {
		q.items = nil // let the backing array go
	}
	return batch
}

// fill waits up to flush for the queue to hold max deliveries.
func (q *laneQueue) fill(max int, flush time.Duration) {
	deadline := time.NewTimer(flush)
	defer deadline.Stop()
	for {
		n, closed := q.state()
		if n >= max || closed {
			return
		}
		select {
		case <-q.signal:
		case <-deadline.C:
			return
		}
	}
}

// lane applies its queue's deliveries in order, in batches of up to BatchSize (what queued
// while the previous batch committed, or collected for at most FlushInterval), until the queue is closed. A batch in progress is finished (committed and
// acked) unless ctx ends first.
func (s *Subscriber) lane(ctx context.Context, sess *session, q *laneQueue) error {
	for {
		ds := q.take(s.cfg.BatchSize, s.cfg.FlushInterval)
		if ds == nil || ctx.Err() != nil {
			return nil
		}
		batch := make([]*item, len(ds))
		for i := range ds {
			batch[i] = s.newItem(ds[i])
		}
		if err := s.applyBatch(ctx, sess, batch); err != nil {
			return err
		}
	}
}

func (s *Subscriber) newItem(d amqp.Delivery) *item {
	msg, err := decodeDelivery(&d)
	return &item{d: d, msg: msg, err: err}
}
