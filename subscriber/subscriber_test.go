package subscriber

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/faultproxy"
	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

func TestNewReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := New(nil, Config{RetryDelays: []time.Duration{time.Hour}, InboxRetention: time.Minute, Concurrency: -1})
	if err == nil {
		t.Fatal("New accepted an empty config")
	}
	for _, want := range []string{"db is required", "AMQPURL", "Queue", "ConsumerName", "Handler", "Concurrency", "InboxRetention"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

// The same message published twice is applied once; and a message whose transaction
// committed but whose ack never reached the broker (the connection died in between) is
// redelivered and skipped.
func TestDuplicatesAppliedOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	proxy := f.brokerProxy()

	metrics := &countingMetrics{}
	cfg := f.config(recordHandler)
	cfg.AMQPURL = f.broker.URLVia(proxy.Addr())
	cfg.Metrics = metrics
	s, err := New(f.db.DB, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var cuts atomic.Int32
	s.testHookAfterCommit = func() {
		if cuts.Add(1) == 1 { // the first batch commits, then the consumer "dies" before acking
			proxy.Cut()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	f.publish("dup-1", "k1", "test", []byte("a"))
	f.publish("dup-1", "k1", "test", []byte("a"))
	f.publish("other", "k2", "test", []byte("b"))
	f.waitApplied([]string{"dup-1", "other"}, 20*time.Second)
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		n := metrics.get(&metrics.dups)
		return n >= 2, fmt.Sprintf("%d duplicates skipped, want at least 2 (one published twice, one redelivered after the cut)", n)
	})
	if proxy.Accepted() < 2 {
		t.Errorf("the consumer connected %d times, want a reconnect after the cut", proxy.Accepted())
	}
	f.waitApplied([]string{"dup-1", "other"}, time.Second)
}

// A handler failing twice is retried through both delay tiers and applied once.
func TestRetryThroughTiers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var mu sync.Mutex
	var seen []Message
	cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
		mu.Lock()
		seen = append(seen, msg)
		mu.Unlock()
		if msg.ID == "flaky" && msg.Attempt <= 2 {
			return fmt.Errorf("transient failure on attempt %d", msg.Attempt)
		}
		return recordHandler(ctx, tx, msg)
	})
	metrics := &countingMetrics{}
	cfg.Metrics = metrics
	f.start(f.db.DB, cfg)
	f.publish("flaky", "k", "test", []byte("x"))
	f.publish("steady", "k2", "test", []byte("y"))
	f.waitApplied([]string{"flaky", "steady"}, 20*time.Second)

	mu.Lock()
	defer mu.Unlock()
	var attempts []int
	for _, m := range seen {
		if m.ID != "flaky" {
			continue
		}
		attempts = append(attempts, m.Attempt)
		if m.Attempt == 1 {
			continue
		}
		// Attempt n arrived back from tier n-1: the broker's x-death names that tier.
		wantTier := fmt.Sprintf("%s.retry.%dms", f.queue, []int{200, 400}[m.Attempt-2])
		if !xDeathHas(m.Headers, wantTier) {
			t.Errorf("attempt %d did not come through %s; x-death = %v", m.Attempt, wantTier, m.Headers["x-death"])
		}
		if m.Headers[HeaderOriginalExchange] != f.exchange || m.Headers[HeaderOriginalRoutingKey] != "rk" {
			t.Errorf("attempt %d: original exchange/key headers = %v/%v", m.Attempt,
				m.Headers[HeaderOriginalExchange], m.Headers[HeaderOriginalRoutingKey])
		}
	}
	if fmt.Sprint(attempts) != "[1 2 3]" {
		t.Errorf("attempts of the flaky message = %v, want [1 2 3]", attempts)
	}
	if n := metrics.get(&metrics.retried); n != 2 {
		t.Errorf("retried = %d, want 2", n)
	}
}

func xDeathHas(h amqp.Table, queue string) bool {
	deaths, _ := h["x-death"].([]any)
	for _, d := range deaths {
		if t, ok := d.(amqp.Table); ok && t["queue"] == queue {
			return true
		}
	}
	return false
}

// A permanent error, a panic, running out of attempts and an undecodable delivery each end in
// the parking lot with the reason; the other messages are applied.
func TestParking(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
		// Each failing handler writes first, so a leak of its work past the rollback shows.
		if err := recordHandler(ctx, tx, msg); err != nil {
			return err
		}
		switch msg.ID {
		case "permanent":
			return fmt.Errorf("order 7 does not exist: %w", ErrPermanent)
		case "panics":
			panic("handler bug: index out of range")
		case "always-fails":
			return errors.New("still broken")
		}
		return nil
	})
	cfg.MaxAttempts = 2
	cfg.BatchSize = 8
	// Let the lane's batch fill with all of them, however slowly a loaded machine hands them
	// over. The first batch closes once all 8 deliveries are queued (the one without an id
	// shares their lane); the retry of the two that fail waits the whole interval, well within
	// the waits below.
	cfg.FlushInterval = 3 * time.Second
	metrics := &countingMetrics{}
	cfg.Metrics = metrics
	// All share one key and are queued before the consumer starts, so they share a batch:
	// one failure must not undo the others.
	for _, id := range []string{"ok-1", "permanent", "ok-2", "panics", "ok-3", "always-fails", "ok-4"} {
		f.publish(id, "same-key", "test", []byte(id))
	}
	f.publishRaw(amqp.Publishing{Body: []byte("no id")})
	f.start(f.db.DB, cfg)

	parked := f.waitParked(4, 20*time.Second)
	f.waitApplied([]string{"ok-1", "ok-2", "ok-3", "ok-4"}, 10*time.Second)
	for id, want := range map[string]struct {
		reason   string
		attempts int64
	}{
		"permanent":    {"order 7 does not exist", 1},
		"panics":       {"handler panicked", 2},
		"always-fails": {"still broken", 2},
		"":             {"no message_id", 1},
	} {
		d, ok := parked[id]
		if !ok {
			t.Errorf("message %q was not parked", id)
			continue
		}
		if reason, _ := d.Headers[HeaderError].(string); !strings.Contains(reason, want.reason) {
			t.Errorf("%q parked with %s %q, want it to mention %q", id, HeaderError, reason, want.reason)
		}
		if d.Headers[HeaderAttempts] != want.attempts {
			t.Errorf("%q parked with %s %v, want %d", id, HeaderAttempts, d.Headers[HeaderAttempts], want.attempts)
		}
		if d.Headers[HeaderOriginalExchange] != f.exchange || d.Headers[HeaderOriginalRoutingKey] != "rk" {
			t.Errorf("%q parked with original exchange/key %v/%v", id, d.Headers[HeaderOriginalExchange], d.Headers[HeaderOriginalRoutingKey])
		}
		if at, _ := d.Headers[HeaderFailedAt].(string); at == "" {
			t.Errorf("%q parked without %s", id, HeaderFailedAt)
		} else if _, err := time.Parse(time.RFC3339Nano, at); err != nil {
			t.Errorf("%q: %s: %v", id, HeaderFailedAt, err)
		}
		if string(d.Body) != id && id != "" {
			t.Errorf("%q parked with body %q", id, d.Body)
		}
	}
	if len(parked) != 4 {
		t.Errorf("%d messages parked, want 4", len(parked))
	}
	if n := metrics.get(&metrics.parked); n != 4 {
		t.Errorf("parked metric = %d, want 4", n)
	}
	if n := metrics.get(&metrics.maxBatch); n < 7 {
		t.Errorf("largest batch held %d deliveries, want the 7 of one key together", n)
	}
}

// A retry tier that does not exist makes the move fail: the original is never acked, so it
// is not lost.
func TestMissingTierKeepsMessage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var calls atomic.Int32
	cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
		calls.Add(1)
		return errors.New("fails")
	})
	cfg.RetryDelays = []time.Duration{7 * time.Second} // no such tier declared
	cfg.StopTimeout = time.Second
	_, stop := f.start(f.db.DB, cfg)
	f.publish("m", "k", "test", []byte("x"))
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		n := calls.Load()
		return n >= 2, fmt.Sprintf("handler called %d times, want a redelivery after the failed move", n)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ch := f.broker.Channel()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		q, err := ch.QueueDeclarePassive(f.queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
		if err != nil {
			t.Fatalf("inspect queue: %v", err)
		}
		return q.Messages == 1, fmt.Sprintf("queue holds %d messages, want the unmoved one", q.Messages)
	})
}

// With 8 lanes and 50 keys, every key's messages are applied in publish order.
func TestPerKeyOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cfg := f.config(recordHandler)
	cfg.Concurrency = 8
	cfg.BatchSize = 16
	metrics := &countingMetrics{}
	cfg.Metrics = metrics
	const keys, perKey = 50, 20
	var ids []string
	for seq := 0; seq < perKey; seq++ {
		for k := 0; k < keys; k++ {
			id := fmt.Sprintf("k%d-%d", k, seq)
			ids = append(ids, id)
			f.publish(id, fmt.Sprintf("key-%d", k), "test", []byte(fmt.Sprint(seq)))
		}
	}
	f.start(f.db.DB, cfg)
	f.waitApplied(ids, 60*time.Second)

	rows, err := f.db.DB.Query("SELECT k, CAST(body AS SIGNED) FROM applied ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	next := map[string]int{}
	for rows.Next() {
		var k string
		var seq int
		if err := rows.Scan(&k, &seq); err != nil {
			t.Fatal(err)
		}
		if seq != next[k] {
			t.Fatalf("key %s: applied seq %d, want %d", k, seq, next[k])
		}
		next[k]++
	}
	if len(next) != keys {
		t.Errorf("%d keys applied, want %d", len(next), keys)
	}
	t.Logf("%d batches, largest %d", metrics.get(&metrics.batches), metrics.get(&metrics.maxBatch))
	if metrics.get(&metrics.maxBatch) < 2 {
		t.Errorf("no batch held more than one delivery: group commit did not happen")
	}
}

// Handlers slower than a transaction are measured as such, so lanes stop taking each other's
// deliveries along (which would run those handlers one after the other instead of in
// parallel); quick ones leave room to take along.
func TestSlowHandlersAreNotTakenAlong(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// A batch of one takes nothing along while a quarter of a transaction's own cost is less
	// than two handlers' time: transactions under 1.6 s at 200 ms, which a commit on a loaded
	// machine stays well under (at 50 ms the bound was 400 ms, and the first batch alone sets it).
	const slow = 200 * time.Millisecond
	cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
		time.Sleep(slow)
		return recordHandler(ctx, tx, msg)
	})
	s, _ := f.start(f.db.DB, cfg)
	var ids []string
	for i := range 4 {
		id := fmt.Sprint("slow-", i)
		ids = append(ids, id)
		f.publish(id, fmt.Sprint("key-", i), "test", []byte("x"))
	}
	f.waitApplied(ids, 30*time.Second)
	s.costs.mu.Lock()
	perMessage := time.Duration(s.costs.perMessage)
	s.costs.mu.Unlock()
	if perMessage < slow {
		t.Errorf("handler time per message measured as %s; the handler sleeps %s", perMessage, slow)
	}
	if n := s.costs.takeAlong(1, 31); n != 0 {
		t.Errorf("a batch may take along %d deliveries of %s handlers", n, perMessage)
	}
}

// A consumer whose broker and database connections are cut mid-batch, and which is then
// stopped, loses nothing; a second consumer finishes and nothing is applied twice.
func TestKilledMidBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	amqpProxy := f.brokerProxy()
	dbProxy, err := faultproxy.New(testenv.MySQLAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer dbProxy.Close()
	proxiedDB, err := sql.Open("mysql", testenv.DSNVia(t, f.db.DSN, dbProxy.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer proxiedDB.Close()

	const n = 600
	var ids []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("m%04d", i)
		ids = append(ids, id)
		f.publish(id, fmt.Sprintf("key-%d", i%37), "test", []byte("x"))
	}
	// The first consumer is slowed down so the cut lands in the middle of its work.
	cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
		if _, err := tx.ExecContext(ctx, "DO SLEEP(0.002)"); err != nil {
			return err
		}
		return recordHandler(ctx, tx, msg)
	})
	cfg.AMQPURL = f.broker.URLVia(amqpProxy.Addr())
	cfg.Concurrency = 4
	cfg.BatchSize = 10
	cfg.StopTimeout = 500 * time.Millisecond
	// The 10th batch commits and then the broker connection dies before its acks: those
	// messages come back and must be skipped. Then the database connection is cut too, in the
	// middle of other lanes' transactions, and the consumer is stopped.
	var commits atomic.Int32
	killed := make(chan struct{})
	_, stop := f.start(proxiedDB, cfg, func(s *Subscriber) {
		s.testHookAfterCommit = func() {
			if commits.Add(1) == 10 {
				amqpProxy.Refuse(true)
				amqpProxy.Cut()
				close(killed)
			}
		}
	})
	select {
	case <-killed:
	case <-time.After(30 * time.Second):
		t.Fatal("the first consumer did not commit 10 batches")
	}
	dbProxy.Refuse(true)
	dbProxy.Cut()
	if err := stop(); err != nil {
		t.Fatalf("first consumer: %v", err)
	}
	before := len(f.appliedCounts())
	if before >= n {
		t.Fatalf("all %d applied before the cut; the test did not cut mid-way", n)
	}

	cfg2 := f.config(recordHandler)
	f.start(f.db.DB, cfg2)
	f.waitApplied(ids, 60*time.Second)
	t.Logf("%d applied before the cut, %d after", before, n-before)
}

// Old inbox rows of this consumer are removed in batches; recent ones and other consumers'
// stay.
func TestCleanInbox(t *testing.T) {
	t.Parallel()
	db := testenv.NewDatabase(t)
	ctx := context.Background()
	if err := outbox.Migrate(ctx, db.DB); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 25; i++ {
		if _, err := db.DB.Exec("INSERT INTO syncworker_inbox (consumer, message_id, processed_at) VALUES ('c', ?, NOW(6) - INTERVAL 8 DAY), ('other', ?, NOW(6) - INTERVAL 8 DAY)",
			fmt.Sprintf("old-%d", i), fmt.Sprintf("old-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.DB.Exec("INSERT INTO syncworker_inbox (consumer, message_id, processed_at) VALUES ('c', 'new', NOW(6) - INTERVAL 6 DAY)"); err != nil {
		t.Fatal(err)
	}
	s, err := New(db.DB, Config{AMQPURL: "amqp://unused", Queue: "q", ConsumerName: "c", InboxCleanBatch: 10,
		Handler: func(context.Context, *sql.Tx, Message) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	removed, err := s.CleanInbox(ctx)
	if err != nil || removed != 25 {
		t.Fatalf("CleanInbox = %d, %v; want 25", removed, err)
	}
	var left []string
	rows, err := db.DB.Query("SELECT CONCAT(consumer, '/', message_id) FROM syncworker_inbox WHERE message_id = 'new' OR consumer = 'other' ORDER BY 1 LIMIT 2")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		rows.Scan(&s) //nolint:errcheck
		left = append(left, s)
	}
	var total int
	db.DB.QueryRow("SELECT COUNT(*) FROM syncworker_inbox").Scan(&total) //nolint:errcheck
	if total != 26 || len(left) != 2 || left[0] != "c/new" {
		t.Errorf("after cleaning: %d rows, sample %v; want 26 rows (c/new and 25 of other)", total, left)
	}
}

// A database outage in the middle of consuming: batches are retried with backoff until the
// database is back, and every message is applied once, with no message moved to a retry tier.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dbProxy, err := faultproxy.New(testenv.MySQLAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer dbProxy.Close()
	proxiedDB, err := sql.Open("mysql", testenv.DSNVia(t, f.db.DSN, dbProxy.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer proxiedDB.Close()
	metrics := &countingMetrics{}
	cfg := f.config(recordHandler)
	cfg.Metrics = metrics
	f.start(proxiedDB, cfg)

	var ids []string
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			id := fmt.Sprintf("m%03d", i)
			ids = append(ids, id)
			f.publish(id, fmt.Sprintf("k%d", i%7), "test", []byte("x"))
		}
	}
	publish(0, 50)
	f.waitApplied(ids, 20*time.Second)
	dbProxy.Refuse(true)
	dbProxy.Cut()
	accepted := dbProxy.Accepted()
	publish(50, 100)
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		n := dbProxy.Accepted() - accepted
		return n >= 3, fmt.Sprintf("%d reconnection attempts to the database so far", n)
	})
	dbProxy.Refuse(false)
	f.waitApplied(ids, 30*time.Second)
	if n := metrics.get(&metrics.retried) + metrics.get(&metrics.parked); n != 0 {
		t.Errorf("%d messages were moved to retry tiers or parked because of the outage; want them held and retried", n)
	}
}

// A graceful stop finishes and acks the batches in flight: afterwards every message is either
// applied (and gone from the queue) or still in the queue, never both, and Run returns nil.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const n = 200
	for i := 0; i < n; i++ {
		f.publish(fmt.Sprintf("m%03d", i), fmt.Sprintf("k%d", i%5), "test", []byte("x"))
	}
	cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
		if _, err := tx.ExecContext(ctx, "DO SLEEP(0.005)"); err != nil {
			return err
		}
		return recordHandler(ctx, tx, msg)
	})
	cfg.BatchSize = 10
	_, stop := f.start(f.db.DB, cfg)
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		got := len(f.appliedCounts())
		return got >= 20, fmt.Sprintf("%d applied", got)
	})
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	applied := len(f.appliedCounts())
	ch := f.broker.Channel()
	var left int
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		q, err := ch.QueueDeclarePassive(f.queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
		if err != nil {
			t.Fatalf("inspect queue: %v", err)
		}
		left = q.Messages
		return applied+left == n, fmt.Sprintf("%d applied + %d in the queue, want %d", applied, left, n)
	})
	if applied == n {
		t.Logf("everything was applied before the stop took effect")
	}
}

// A deadlock reported by a handler retries the whole batch; the message is not sent around
// the retry tiers.
func TestHandlerDeadlockRetriesBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var calls atomic.Int32
	metrics := &countingMetrics{}
	cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
		if msg.ID == "victim" && calls.Add(1) <= 2 {
			return fmt.Errorf("update: %w", &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock"})
		}
		return recordHandler(ctx, tx, msg)
	})
	cfg.Metrics = metrics
	for _, id := range []string{"before", "victim", "after"} {
		f.publish(id, "k", "test", []byte(id))
	}
	f.start(f.db.DB, cfg)
	f.waitApplied([]string{"before", "victim", "after"}, 20*time.Second)
	if n := metrics.get(&metrics.retried); n != 0 {
		t.Errorf("%d messages went to a retry tier because of a deadlock", n)
	}
}
