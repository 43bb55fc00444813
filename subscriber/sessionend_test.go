package subscriber

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/naming"
	"github.com/syncworker/syncworker/internal/testenv"
)

// When a move fails and ends the session, the other lanes' batches are moving their own
// failures at that moment (their publishes wait for the mover, one batch at a time). Those
// moves must finish and be acked before the consumer is cancelled: abandoning a move whose
// publish went out before its confirm came back leaves the delivery unacked, and its
// redelivery is moved a second time.
func TestAFailedMoveLetsTheOtherLanesFinishTheirMoves(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var transient atomic.Int32
	cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
		if strings.HasPrefix(msg.ID, "transient") {
			transient.Add(1)
			return errors.New("fails for now")
		}
		return fmt.Errorf("bad data: %w", ErrPermanent)
	})
	cfg.RetryDelays = []time.Duration{7 * time.Second} // no such tier declared: that move fails
	// Every lane fills a batch of 10 failures; one of them holds the failure whose move fails.
	cfg.Concurrency, cfg.BatchSize, cfg.Prefetch, cfg.FlushInterval = 4, 10, 400, 300*time.Millisecond
	const permanent = 200
	var ids []string
	f.publish("transient", "k-t", "test", []byte("y"))
	for i := range permanent {
		ids = append(ids, fmt.Sprintf("permanent-%d", i))
		f.publish(ids[i], fmt.Sprintf("k-%d", i), "test", []byte("x"))
	}
	_, stop := f.start(f.db.DB, cfg)
	copies := map[string]int{}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n := transient.Load()
		return n >= 4, fmt.Sprintf("the failing move ended %d sessions, want 4", n)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, d := range f.getAll(naming.ParkingLot(f.queue)) {
		copies[d.MessageId]++
	}
	dups := 0
	for id, n := range copies {
		if n != 1 || strings.HasPrefix(id, "transient") {
			dups++
			if dups <= 10 {
				t.Errorf("parking lot holds %d copies of %s", n, id)
			}
		}
	}
	if len(copies) == 0 {
		t.Errorf("nothing parked")
	}
	if dups > 0 {
		t.Errorf("%d messages parked more than once (%d failed moves ended sessions)", dups, transient.Load())
	}
}

// A stop that runs out of StopTimeout abandons the batch a handler is working on; it goes
// back to the queue when the connection closes. The deliveries queued behind it in its lane
// were handed back before that (on RabbitMQ 4.3+, by nack): those of its key must not come
// back ahead of it, or the next consumer applies a key's messages out of order though none
// of them failed. Keys with nothing abandoned are handed back all the same.
func TestAStopPastItsTimeoutKeepsEachKeysOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var ids []string
	for i := range 5 {
		ids = append(ids, fmt.Sprintf("a%d", i))
		f.publish(ids[len(ids)-1], "key-a", "test", []byte("x"))
	}
	for i := range 5 {
		ids = append(ids, fmt.Sprintf("b%d", i))
		f.publish(ids[len(ids)-1], "key-b", "test", []byte("x"))
	}
	entered := make(chan struct{})
	var once atomic.Bool
	cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
		if once.CompareAndSwap(false, true) {
			close(entered)
		}
		<-ctx.Done() // a0 is still being applied when the stop runs out of time
		return ctx.Err()
	})
	cfg.Concurrency, cfg.BatchSize, cfg.Prefetch = 1, 1, 20 // one lane: a0 in hand, the rest queued
	cfg.StopTimeout = 300 * time.Millisecond
	s, stop := f.start(f.db.DB, cfg)
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("no message reached the handler")
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		q, err := f.broker.Channel().QueueDeclarePassive(f.queue, true, false, false, false, nil)
		if err != nil {
			t.Fatalf("inspect queue: %v", err)
		}
		return q.Messages == 0, fmt.Sprintf("%d messages not delivered to the consumer yet", q.Messages)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := brokerAtLeast(f.broker, 4, 3); ok && s.testHandedBack.Load() == 0 {
		t.Errorf("nothing was handed back by nack: key-b had nothing abandoned")
	}

	f.start(f.db.DB, f.config(recordHandler))
	f.waitApplied(ids, 20*time.Second)
	rows, err := f.db.DB.Query("SELECT message_id, k FROM applied ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string][]string{}
	for rows.Next() {
		var id, k string
		if err := rows.Scan(&id, &k); err != nil {
			t.Fatal(err)
		}
		got[k] = append(got[k], id)
	}
	for k, want := range map[string]string{"key-a": "a0 a1 a2 a3 a4", "key-b": "b0 b1 b2 b3 b4"} {
		if g := strings.Join(got[k], " "); g != want {
			t.Errorf("%s applied in the order %s, want %s", k, g, want)
		}
	}
}

// A stop while the broker has stalled (the network holds every byte, nothing is closed) ends
// Run within StopTimeout plus the 5 s cancelAfterAcks waits for the cancel-ok: closing the
// connection must not then wait for a close-ok that cannot come either.
func TestAStopWhileTheBrokerStallsEndsRunInTime(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	proxy := f.brokerProxy()
	applied := make(chan struct{}, 1)
	cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
		select {
		case applied <- struct{}{}:
		default:
		}
		return recordHandler(ctx, tx, msg)
	})
	cfg.AMQPURL = f.broker.URLVia(proxy.Addr())
	cfg.StopTimeout = time.Second
	s, err := New(f.db.DB, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	f.publish("m1", "k", "test", []byte("x"))
	select {
	case <-applied:
	case <-time.After(20 * time.Second):
		cancel()
		<-done
		t.Fatal("the message was not applied")
	}
	proxy.Pause()
	start := time.Now()
	cancel()
	// StopTimeout + the cancel-ok wait + slack for a loaded machine; a close that waits for the
	// stalled broker's close-ok takes until the heartbeat gives up (15 s here).
	const bound = time.Second + cancelAfterAcksTimeout + 4*time.Second
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		if took := time.Since(start); took > bound {
			t.Errorf("Run took %v to return after the stop, want at most %v", took.Round(100*time.Millisecond), bound)
		}
	case <-time.After(60 * time.Second):
		proxy.Resume()
		<-done
		t.Errorf("Run did not return within 60 s of the stop while the broker stalled")
	}
	proxy.Resume()
}
