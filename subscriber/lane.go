package subscriber

import (
	"context"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// lanes spread a session's deliveries by key over Concurrency lanes, each applying its queue
// in order, in batches (group commit).
//
// A lane's batch with room left takes along what is queued in the lanes that are not applying
// anything at that moment: at moderate rates each lane would otherwise commit a message or two
// at a time, several transactions (and log flushes) where one does. How much it takes along
// is up to takeAlong (applyCosts: the batch's handlers within a quarter of a transaction's
// own cost, so slow handlers keep running in parallel); under load every lane fills its own batch and they
// commit in parallel anyway. A queue's deliveries are still applied one batch after the other,
// whichever lane applies them (laneQueue.applying), and the lanes' keys are disjoint, so each
// key's order is kept.
type lanes struct {
	queues    []*laneQueue
	batchSize int
	flush     time.Duration
	// takeAlong says how many deliveries (at most room) a batch of batched may take along.
	takeAlong func(batched, room int) int

	mu sync.Mutex
	// cutShort holds the keys of the deliveries of batches that ctx ended before they were
	// settled (see cutShortKeys).
	cutShort map[string]struct{}
}

func newLanes(n, batchSize int, flush time.Duration, takeAlong func(batched, room int) int) *lanes {
	l := &lanes{queues: make([]*laneQueue, n), batchSize: batchSize, flush: flush, takeAlong: takeAlong}
	for i := range l.queues {
		l.queues[i] = newLaneQueue()
	}
	return l
}

// push queues d on the lane of its key.
func (l *lanes) push(key string, d amqp.Delivery) {
	l.queues[laneOf(key, len(l.queues))].push(d)
}

// close ends every lane and returns the deliveries that were queued, unacked and never handed
// to a handler (see laneQueue.close).
func (l *lanes) close() []amqp.Delivery {
	var queued []amqp.Delivery
	for _, q := range l.queues {
		queued = append(queued, q.close()...)
	}
	return queued
}

// noteCutShort records the keys of batch, which ctx ended before it was settled: some of it
// may be unacked, to go back when the connection closes.
func (l *lanes) noteCutShort(batch []amqp.Delivery) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cutShort == nil {
		l.cutShort = map[string]struct{}{}
	}
	for i := range batch {
		l.cutShort[orderKey(&batch[i])] = struct{}{}
	}
}

// cutShortKeys returns the keys of the deliveries of batches that ctx ended before they were
// settled (a stop past StopTimeout, a lost connection). Deliveries of those keys queued behind
// them must not be handed back ahead of them (see Subscriber.handBack).
func (l *lanes) cutShortKeys() map[string]struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cutShort
}

// laneOf is the lane of key: 32-bit FNV-1a mod n, computed in place (hash/fnv's hasher and
// the key's conversion to bytes cost two allocations per delivery).
func laneOf(key string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// run is lane own: it applies batches with apply (what queued in its queue while the previous
// batch was applied, or collected for at most the flush interval, plus what it takes along
// from idle lanes) until its queue is closed, ctx ends or apply fails. A batch in progress is
// finished (committed and acked) unless ctx ends first.
func (l *lanes) run(ctx context.Context, own int, apply func(context.Context, []amqp.Delivery) error) error {
	q := l.queues[own]
	for q.wait() {
		q.applying.Lock()
		if l.flush > 0 {
			q.fill(l.batchSize, l.flush)
		}
		batch := q.takeQueued(l.batchSize) // none when another lane took them along meanwhile
		held := []*laneQueue{q}
		limit := len(batch)
		if limit < l.batchSize {
			limit += l.takeAlong(len(batch), l.batchSize-len(batch))
		}
		for i := 1; i < len(l.queues) && len(batch) < limit; i++ {
			other := l.queues[(own+i)%len(l.queues)]
			if !other.applying.TryLock() {
				continue // applying a batch: what queued there waits for it
			}
			more := other.takeQueued(limit - len(batch))
			if len(more) == 0 {
				other.applying.Unlock()
				continue
			}
			batch = append(batch, more...)
			held = append(held, other)
		}
		var err error
		if len(batch) > 0 && ctx.Err() == nil { // stopping: what was taken goes back unacked
			err = apply(ctx, batch)
		}
		if len(batch) > 0 && ctx.Err() != nil {
			l.noteCutShort(batch)
		}
		for _, h := range held {
			h.applying.Unlock()
		}
		if err != nil || ctx.Err() != nil {
			return err
		}
	}
	return nil
}

// laneQueue is one lane's FIFO of deliveries. It grows as needed instead of being allocated
// for the worst case: all lanes together never hold more than Prefetch deliveries (the broker
// sends no more unacked), and pushing never blocks, so a slow lane cannot stall the others.
type laneQueue struct {
	// applying is held while a batch with deliveries of this queue is being applied, by its
	// own lane or by one that took them along.
	applying sync.Mutex

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

// close ends the queue: deliveries not yet taken are returned, unacked, for the session to hand
// back, and nothing more is taken. A batch already taken is finished by its lane.
func (q *laneQueue) close() []amqp.Delivery {
	q.mu.Lock()
	q.closed = true
	items := q.items
	q.items = nil
	q.mu.Unlock()
	q.notify()
	return items
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

// wait blocks until a delivery is queued and reports true, or reports false once the queue is
// closed.
func (q *laneQueue) wait() bool {
	for {
		n, closed := q.state()
		if closed {
			return false
		}
		if n > 0 {
			return true
		}
		<-q.signal
	}
}

// takeQueued returns up to max of the deliveries queued now, in order, without waiting.
func (q *laneQueue) takeQueued(max int) []amqp.Delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(max, len(q.items))
	if n == 0 {
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

// applyDeliveries applies one batch of deliveries as a lane's apply function.
func (s *Subscriber) applyDeliveries(ctx context.Context, sess *session, ds []amqp.Delivery) error {
	batch := make([]*item, len(ds))
	for i := range ds {
		batch[i] = s.newItem(ds[i])
	}
	return s.applyBatch(ctx, sess, batch)
}

func (s *Subscriber) newItem(d amqp.Delivery) *item {
	msg, err := decodeDelivery(&d)
	return &item{d: d, msg: msg, err: err}
}
