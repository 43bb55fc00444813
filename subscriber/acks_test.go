package subscriber

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/naming"
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

// A stop that lets a burst of acks go out last: the consumer is cancelled after them, so a
// quorum queue settles every one before the connection closes (it can drop acks that arrive
// just before their channel closes, rabbitmq-server#10327). What was applied is gone from the
// queue and what was not is back in it: none is both.
func TestStopAfterABurstOfAcksLeavesNoAppliedMessageInTheQueue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const total = 400
	for i := range total {
		f.publish(fmt.Sprintf("m-%d", i), fmt.Sprintf("k-%d", i), "test", []byte("x"))
	}
	release := make(chan struct{})
	var entered atomic.Int32
	cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
		entered.Add(1)
		<-release
		return recordHandler(ctx, tx, msg)
	})
	cfg.BatchSize, cfg.Prefetch, cfg.FlushInterval = 100, total, time.Second
	_, stop := f.start(f.db.DB, cfg)
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		return entered.Load() > 0, "no batch is being applied"
	})
	time.Sleep(time.Second) // the other lanes fill their batches too: more acks in the burst
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(200 * time.Millisecond) // the stop is under way before the batches commit
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	applied := f.appliedCounts()
	if len(applied) < cfg.BatchSize {
		t.Fatalf("%d messages applied, want at least a batch (%d)", len(applied), cfg.BatchSize)
	}
	ch := f.broker.Channel()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		q, err := ch.QueueDeclarePassive(f.queue, true, false, false, false, nil)
		if err != nil {
			t.Fatalf("inspect queue: %v", err)
		}
		return len(applied)+q.Messages == total, fmt.Sprintf("%d applied + %d in the queue, want %d: applied messages came back",
			len(applied), q.Messages, total)
	})
	for _, d := range f.getAll(f.queue) {
		if applied[d.MessageId] > 0 {
			t.Errorf("message %s was applied and is back in the queue", d.MessageId)
		}
	}
}

// When one move of a batch fails (here: its retry tier is missing) and the others succeed, the
// ones that reached the parking lot are acked, and their acks settle before the session ends
// to hand the unmoved message back: none is parked again on a redelivery.
func TestAMoveThatSucceededIsAckedWhenAnotherFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var retried atomic.Int32
	cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
		if msg.ID != "transient" {
			return fmt.Errorf("bad data: %w", ErrPermanent)
		}
		retried.Add(1)
		return errors.New("fails for now")
	})
	cfg.RetryDelays = []time.Duration{7 * time.Second} // no such tier declared
	cfg.StopTimeout = time.Second
	cfg.BatchSize, cfg.FlushInterval = 100, time.Second // all in one batch
	const permanent = 99
	f.publish("transient", "k", "test", []byte("y"))
	for i := range permanent {
		f.publish(fmt.Sprintf("permanent-%d", i), "k", "test", []byte("x"))
	}
	_, stop := f.start(f.db.DB, cfg)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n := retried.Load()
		return n >= 3, fmt.Sprintf("transient message handled %d times, want 3 (two redeliveries after failed moves)", n)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	copies := map[string]int{}
	for _, d := range f.getAll(naming.ParkingLot(f.queue)) {
		copies[d.MessageId]++
	}
	for id, n := range copies {
		if n != 1 || id == "transient" {
			t.Errorf("parking lot holds %d copies of %s", n, id)
		}
	}
	if len(copies) != permanent {
		t.Errorf("parking lot holds %d messages, want the %d permanent failures", len(copies), permanent)
	}
}
