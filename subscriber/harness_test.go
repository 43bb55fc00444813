package subscriber

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/syncworker/syncworker/internal/faultproxy"
	"github.com/syncworker/syncworker/internal/naming"
	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// fixture is one test's database (migrated, with an `applied` table the test handlers write)
// and broker entities: the consumer queue with tiers and parking lot, and a fanout exchange
// bound to it that test events are published to.
type fixture struct {
	t        *testing.T
	db       *testenv.Database
	broker   *testenv.Broker
	queue    string
	exchange string
	delays   []time.Duration
	pub      *amqp.Channel
	pubMu    sync.Mutex
}

var testDelays = []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, db: testenv.NewDatabase(t), broker: testenv.NewBroker(t), delays: testDelays}
	fixtureTables(t, f)
	f.queue = f.broker.Name("q")
	f.exchange = f.broker.Name("events")
	declareQueue(t, f.broker, f.exchange, f.queue, f.delays)
	f.pub = f.broker.Channel()
	if err := f.pub.Confirm(false); err != nil {
		t.Fatalf("confirm mode: %v", err)
	}
	return f
}

// fixtureTables migrates f's database and creates the `applied` table the test handlers write.
func fixtureTables(t *testing.T, f *fixture) {
	t.Helper()
	ctx := context.Background()
	if err := outbox.Migrate(ctx, f.db.DB); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if _, err := f.db.DB.ExecContext(ctx, `CREATE TABLE applied (
		id BIGINT AUTO_INCREMENT PRIMARY KEY, message_id VARCHAR(255) NOT NULL,
		k VARCHAR(255) NOT NULL, body VARCHAR(255) NOT NULL, attempt INT NOT NULL)`); err != nil {
		t.Fatalf("create applied table: %v", err)
	}
}

// brokerProxy returns a fault proxy in front of the test broker, closed when the test ends;
// connect through it with f.broker.URLVia(proxy.Addr()).
func (f *fixture) brokerProxy() *faultproxy.Proxy {
	f.t.Helper()
	proxy, err := faultproxy.New(f.broker.Host())
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { proxy.Close() })
	return proxy
}

// publish sends an event in the relay's format and waits for the broker's confirm.
func (f *fixture) publish(id, key, eventType string, body []byte) {
	f.t.Helper()
	headers := amqp.Table{}
	if key != "" {
		headers[outbox.HeaderPartitionKey] = key
	}
	f.publishRaw(amqp.Publishing{MessageId: id, Type: eventType, ContentType: "application/json",
		DeliveryMode: amqp.Persistent, Timestamp: time.Now(), Headers: headers, Body: body})
}

func (f *fixture) publishRaw(p amqp.Publishing) {
	f.t.Helper()
	f.pubMu.Lock()
	defer f.pubMu.Unlock()
	dc, err := f.pub.PublishWithDeferredConfirmWithContext(context.Background(), f.exchange, "rk", true, false, p)
	if err != nil {
		f.t.Fatalf("publish: %v", err)
	}
	if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
		f.t.Fatalf("publish not confirmed: %v", err)
	}
}

func (f *fixture) config(h Handler) Config {
	return Config{
		AMQPURL:      f.broker.URL,
		Queue:        f.queue,
		ConsumerName: "test-consumer",
		Handler:      h,
		RetryDelays:  f.delays,
		MaxAttempts:  4,
		StopTimeout:  5 * time.Second,
		Logger:       zaptest.NewLogger(f.t, zaptest.Level(zap.WarnLevel)),
	}
}

// start runs a subscriber until the returned stop is called (or the test ends) and returns
// what Run returned.
func (f *fixture) start(db *sql.DB, cfg Config, prepare ...func(*Subscriber)) (s *Subscriber, stop func() error) {
	f.t.Helper()
	s, err := New(db, cfg)
	if err != nil {
		f.t.Fatalf("New: %v", err)
	}
	for _, p := range prepare {
		p(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = fmt.Errorf("Run did not return within 30s of cancel")
			}
		})
		return runErr
	}
	f.t.Cleanup(func() {
		if err := stop(); err != nil {
			f.t.Errorf("Run: %v", err)
		}
	})
	return s, stop
}

// recordHandler writes one row per applied message into `applied`.
func recordHandler(ctx context.Context, tx *sql.Tx, msg Message) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO applied (message_id, k, body, attempt) VALUES (?, ?, ?, ?)",
		msg.ID, msg.PartitionKey, string(msg.Payload), msg.Attempt)
	return err
}

// appliedCounts returns how many rows `applied` holds per message id.
func (f *fixture) appliedCounts() map[string]int {
	f.t.Helper()
	rows, err := f.db.DB.Query("SELECT message_id, COUNT(*) FROM applied GROUP BY message_id")
	if err != nil {
		f.t.Fatalf("count applied: %v", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			f.t.Fatal(err)
		}
		out[id] = n
	}
	return out
}

// waitApplied waits until every id in ids is applied, then checks none is applied twice and
// nothing else is applied.
func (f *fixture) waitApplied(ids []string, timeout time.Duration) {
	f.t.Helper()
	var counts map[string]int
	testenv.Eventually(f.t, timeout, func() (bool, string) {
		counts = f.appliedCounts()
		missing := 0
		for _, id := range ids {
			if counts[id] == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d messages not applied yet", missing, len(ids))
	})
	for id, n := range counts {
		if n != 1 {
			f.t.Errorf("message %s applied %d times", id, n)
		}
	}
	if len(counts) != len(ids) {
		f.t.Errorf("%d distinct messages applied, want %d", len(counts), len(ids))
	}
}

// getAll takes every message currently in queue q (acking them).
func (f *fixture) getAll(q string) []amqp.Delivery {
	f.t.Helper()
	ch := f.broker.Channel()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(q, true)
		if err != nil {
			f.t.Fatalf("get from %s: %v", q, err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// waitParked waits until the parking lot holds n messages and takes them.
func (f *fixture) waitParked(n int, timeout time.Duration) map[string]amqp.Delivery {
	f.t.Helper()
	parked := map[string]amqp.Delivery{}
	testenv.Eventually(f.t, timeout, func() (bool, string) {
		for _, d := range f.getAll(naming.ParkingLot(f.queue)) {
			parked[d.MessageId] = d
		}
		return len(parked) >= n, fmt.Sprintf("%d of %d messages parked", len(parked), n)
	})
	return parked
}

// countingMetrics counts what the tests assert on.
type countingMetrics struct {
	NopMetrics
	mu                      sync.Mutex
	consumed, dups, retried int
	parked, stale, batches  int
	maxBatch                int
}

func (m *countingMetrics) Consumed(n int) { m.mu.Lock(); m.consumed += n; m.mu.Unlock() }
func (m *countingMetrics) DuplicateSkipped(n int) {
	m.mu.Lock()
	m.dups += n
	m.mu.Unlock()
}
func (m *countingMetrics) Retried(int)          { m.mu.Lock(); m.retried++; m.mu.Unlock() }
func (m *countingMetrics) Parked()              { m.mu.Lock(); m.parked++; m.mu.Unlock() }
func (m *countingMetrics) StaleRowEvent(string) { m.mu.Lock(); m.stale++; m.mu.Unlock() }
func (m *countingMetrics) BatchApplied(n int, _ time.Duration) {
	m.mu.Lock()
	m.batches++
	m.maxBatch = max(m.maxBatch, n)
	m.mu.Unlock()
}

func (m *countingMetrics) get(field *int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return *field
}
