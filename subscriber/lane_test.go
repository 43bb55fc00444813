package subscriber

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// takeAll lets every batch take along as much as fits.
func takeAll(_, room int) int { return room }

// batchRecorder is a lane apply function that records the batches, by delivery tag.
type batchRecorder struct {
	mu      sync.Mutex
	batches [][]uint64
	applied chan struct{}
}

func newBatchRecorder() *batchRecorder { return &batchRecorder{applied: make(chan struct{}, 100)} }

func (r *batchRecorder) apply(_ context.Context, ds []amqp.Delivery) error {
	tags := make([]uint64, len(ds))
	for i := range ds {
		tags[i] = ds[i].DeliveryTag
	}
	r.mu.Lock()
	r.batches = append(r.batches, tags)
	r.mu.Unlock()
	r.applied <- struct{}{}
	return nil
}

// next waits for the next batch and returns it.
func (r *batchRecorder) next(t *testing.T) []uint64 {
	t.Helper()
	select {
	case <-r.applied:
	case <-time.After(5 * time.Second):
		t.Fatal("no batch was applied within 5s")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.batches[len(r.batches)-1]
}

// runLane starts lane own of l and returns what run returns, once it does.
func runLane(l *lanes, own int, apply func(context.Context, []amqp.Delivery) error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- l.run(context.Background(), own, apply) }()
	return done
}

// firstBatch runs lane own of l until it applied a batch, closes l and returns that batch.
func firstBatch(t *testing.T, l *lanes, own int) string {
	t.Helper()
	rec := newBatchRecorder()
	done := runLane(l, own, rec.apply)
	got := fmt.Sprint(rec.next(t))
	l.close()
	waitDone(t, done) //nolint:errcheck // the recorder never fails
	return got
}

func waitDone(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the lane did not stop within 5s")
		return nil
	}
}

func TestLaneAppliesWhatIsQueuedAtOnce(t *testing.T) {
	l := newLanes(1, 32, 0, takeAll)
	pushTags(l.queues[0], 1, 2)
	if got := firstBatch(t, l, 0); got != "[1 2]" {
		t.Fatalf("first batch %v, want deliveries 1 and 2 in order", got)
	}
	var c Config
	c.setDefaults()
	if c.FlushInterval != 0 {
		t.Fatalf("default FlushInterval is %s; a lone message would wait for it", c.FlushInterval)
	}
}

func TestLaneWithFlushWaitsForTheBatchToFill(t *testing.T) {
	// An hour of flush interval: only the batch reaching its size ends the wait.
	l := newLanes(1, 3, time.Hour, takeAll)
	pushTags(l.queues[0], 1)
	rec := newBatchRecorder()
	done := runLane(l, 0, rec.apply)
	time.Sleep(20 * time.Millisecond)
	pushTags(l.queues[0], 2, 3)
	if got := rec.next(t); len(got) != 3 {
		t.Fatalf("first batch %v, want the full batch of 3", got)
	}
	l.close()
	waitDone(t, done) //nolint:errcheck // the recorder never fails

	short := newLanes(1, 3, 10*time.Millisecond, takeAll)
	pushTags(short.queues[0], 4)
	if got := firstBatch(t, short, 0); got != "[4]" {
		t.Fatalf("after the flush interval the batch is %v, want delivery 4 alone", got)
	}
}

func TestLaneStopsOnceClosed(t *testing.T) {
	l := newLanes(1, 32, 0, takeAll)
	pushTags(l.queues[0], 1)
	l.close()
	rec := newBatchRecorder()
	if err := waitDone(t, runLane(l, 0, rec.apply)); err != nil || len(rec.batches) != 0 {
		t.Fatalf("a lane on a closed queue returned %v after applying %v", err, rec.batches)
	}
	waiting := newLanes(1, 32, time.Hour, takeAll)
	done := runLane(waiting, 0, rec.apply)
	time.Sleep(10 * time.Millisecond)
	waiting.close()
	if err := waitDone(t, done); err != nil || len(rec.batches) != 0 {
		t.Fatalf("a lane waiting on an empty queue returned %v after applying %v", err, rec.batches)
	}
}

func TestLaneTakesAlongWhatIdleLanesHold(t *testing.T) {
	l := newLanes(4, 32, 0, takeAll)
	for i, q := range l.queues {
		pushTags(q, uint64(10*i+1), uint64(10*i+2))
	}
	// Lane 2 alone runs; the others are idle, so one transaction serves all four queues,
	// each queue's deliveries in order, its own first.
	if got := firstBatch(t, l, 2); got != "[21 22 31 32 1 2 11 12]" {
		t.Fatalf("batch %v, want lane 2's deliveries, then lanes 3, 0 and 1's", got)
	}
}

func TestLaneLeavesABusyLaneAndTheBatchSizeAlone(t *testing.T) {
	l := newLanes(3, 3, 0, takeAll)
	pushTags(l.queues[0], 1)
	pushTags(l.queues[1], 11) // lane 1 is applying: not taken along
	pushTags(l.queues[2], 21, 22)
	pushTags(l.queues[2], 23) // over the batch size: stays
	l.queues[1].applying.Lock()
	rec := newBatchRecorder()
	done := runLane(l, 0, rec.apply)
	if got := rec.next(t); fmt.Sprint(got) != "[1 21 22]" {
		t.Fatalf("batch %v, want 1, 21 and 22 only", got)
	}
	if n, _ := l.queues[1].state(); n != 1 {
		t.Errorf("the busy lane holds %d deliveries, want its 1 untouched", n)
	}
	// Lane 2's last delivery has no batch to join until lane 0 looks again; lane 1 is still
	// busy, so lane 0 takes lane 2's alone.
	pushTags(l.queues[0], 2)
	if got := rec.next(t); fmt.Sprint(got) != "[2 23]" {
		t.Fatalf("batch %v, want 2 and 23", got)
	}
	l.queues[1].applying.Unlock()
	l.close()
	waitDone(t, done) //nolint:errcheck // the recorder never fails
}

func TestLaneTakesAlongNoMoreThanAllowed(t *testing.T) {
	l := newLanes(2, 32, 0, func(batched, room int) int { return min(room, 2-batched) }) // 2 in all
	pushTags(l.queues[0], 1)
	pushTags(l.queues[1], 11, 12)
	if got := firstBatch(t, l, 0); got != "[1 11]" {
		t.Fatalf("batch %v, want 1 and one taken along, 11", got)
	}
}

func TestLaneFailureReleasesTheLanesItTookFrom(t *testing.T) {
	l := newLanes(2, 32, 0, takeAll)
	pushTags(l.queues[0], 1)
	pushTags(l.queues[1], 11)
	boom := errors.New("move failed")
	var got []amqp.Delivery
	err := waitDone(t, runLane(l, 0, func(_ context.Context, ds []amqp.Delivery) error {
		got = ds
		return boom
	}))
	if !errors.Is(err, boom) || len(got) != 2 {
		t.Fatalf("run returned %v after a batch of %d; want the apply error after a batch of 2", err, len(got))
	}
	for i, q := range l.queues {
		if !q.applying.TryLock() {
			t.Fatalf("lane %d is still held after the failed batch: its own lane would wait forever", i)
		}
	}
}

// TestLanesKeepEachKeysOrderUnderLoad runs every lane at once, with slow batches so that they
// overlap and take along each other's deliveries, and checks the promise the lanes keep: each
// key's deliveries are applied in the order they came, never two batches of a key at a time,
// each exactly once.
func TestLanesKeepEachKeysOrderUnderLoad(t *testing.T) {
	const keys, perKey = 40, 50
	l := newLanes(4, 16, 0, takeAll)
	var mu sync.Mutex
	next := map[string]uint64{}   // per key: the sequence number expected next
	inFlight := map[string]bool{} // keys in a batch being applied
	var batches, mixed, total int // mixed: batches holding deliveries of more than one lane
	apply := func(_ context.Context, ds []amqp.Delivery) error {
		mu.Lock()
		batches++
		seen := map[int]bool{}
		for _, d := range ds {
			seen[laneOf(d.MessageId, 4)] = true
			if inFlight[d.MessageId] {
				mu.Unlock()
				return fmt.Errorf("key %s is in two batches at once", d.MessageId)
			}
		}
		if len(seen) > 1 {
			mixed++
		}
		batchKeys := map[string]bool{}
		for _, d := range ds {
			if d.DeliveryTag != next[d.MessageId] {
				mu.Unlock()
				return fmt.Errorf("key %s: applied %d, want %d", d.MessageId, d.DeliveryTag, next[d.MessageId])
			}
			next[d.MessageId]++
			batchKeys[d.MessageId] = true
			total++
		}
		for k := range batchKeys {
			inFlight[k] = true
		}
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		mu.Lock()
		for k := range batchKeys {
			delete(inFlight, k)
		}
		mu.Unlock()
		return nil
	}
	errs := make(chan error, 4)
	for i := range 4 {
		go func() { errs <- l.run(context.Background(), i, apply) }()
	}
	for seq := range perKey {
		for k := range keys {
			key := fmt.Sprint("key-", k)
			l.push(key, amqp.Delivery{MessageId: key, DeliveryTag: uint64(seq)})
		}
		time.Sleep(time.Millisecond) // a burst per round: lanes go idle in between
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := total
		mu.Unlock()
		if n == keys*perKey {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("applied %d of %d deliveries within 10s", n, keys*perKey)
		}
		select {
		case err := <-errs: // a lane stopped early: apply found the order broken
			t.Fatal(err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	l.close()
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d batches, %d of them with deliveries of several lanes", batches, mixed)
	if mixed == 0 {
		t.Error("no batch took along another lane's deliveries: the test did not exercise it")
	}
}

// pushTags queues deliveries with the given delivery tags, in order.
func pushTags(q *laneQueue, tags ...uint64) {
	for _, tag := range tags {
		q.push(amqp.Delivery{DeliveryTag: tag})
	}
}

// laneOf is FNV-1a, as hash/fnv computes it, mod the lane count.
func TestLaneOfIsFNV1aModLanes(t *testing.T) {
	for _, key := range []string{"", "k", "k0", "k999", "orders:{\"id\":42}", "ü-key"} {
		h := fnv.New32a()
		h.Write([]byte(key))
		for _, n := range []int{1, 4, 7} {
			if got, want := laneOf(key, n), int(h.Sum32()%uint32(n)); got != want {
				t.Errorf("laneOf(%q, %d) = %d, want %d", key, n, got, want)
			}
		}
	}
}
