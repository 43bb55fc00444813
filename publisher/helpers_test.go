package publisher

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap/zaptest"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// env is one test's database, broker prefix and queue.
type env struct {
	t      *testing.T
	db     *testenv.Database
	broker *testenv.Broker
	queue  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, db: testenv.NewDatabase(t), broker: testenv.NewBroker(t)}
	if err := outbox.Migrate(context.Background(), e.db.DB); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	e.db.DB.SetMaxOpenConns(64)
	e.queue = e.broker.Name("q")
	if _, err := e.broker.Channel().QueueDeclare(e.queue, true, false, false, false, nil); err != nil {
		t.Fatalf("declare queue: %v", err)
	}
	return e
}

// config returns a relay configuration for tests: short retries, and leases long enough that
// a relay on a loaded machine does not let one lapse while a test counts its reads, sweeps or
// log lines. Tests of what happens when a lease runs out set a short LeaseTTL themselves, and
// scale their waits with it.
func (e *env) config() Config {
	return Config{
		DB:            e.db.DB,
		AMQP:          amqpx.DialConfig{URL: e.broker.URL},
		Logger:        zaptest.NewLogger(e.t).Named("relay"),
		LeaseTTL:      5 * time.Second,
		RenewInterval: 200 * time.Millisecond,
		RetryInitial:  20 * time.Millisecond,
		RetryMax:      200 * time.Millisecond,
		StatsInterval: -1,
	}
}

// running is a relay started by a test.
type running struct {
	relay  *Relay
	cancel context.CancelFunc
	done   chan error
}

// start runs a relay; prepare, if given, may change it before it runs.
func (e *env) start(cfg Config, prepare ...func(*Relay)) *running {
	e.t.Helper()
	r, err := New(cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	for _, f := range prepare {
		f(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{relay: r, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	e.t.Cleanup(func() { run.stop(e.t) })
	return run
}

// stop cancels the relay and waits for Run to return nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run returned %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("Run did not return within 30s of cancel")
	}
}

// kill stops the relay like a killed process: no settling, no lease release.
func (r *running) kill(t *testing.T) {
	r.relay.crashed.Store(true)
	r.stop(t)
}

// msg returns a message for the test queue (default exchange).
func (e *env) msg(key string, seq int) outbox.Message {
	return outbox.Message{
		Exchange: outbox.DefaultExchange, RoutingKey: e.queue, PartitionKey: key,
		Type: "test.event", Payload: []byte(fmt.Sprintf(`{"key":%q,"seq":%d}`, key, seq)),
		Headers: map[string]string{"seq": fmt.Sprint(seq)},
	}
}

// write commits msgs in one transaction. It may be called from any goroutine: a failure is
// reported with Errorf.
func (e *env) write(msgs ...outbox.Message) {
	e.t.Helper()
	if err := writeTx(e.db.DB, 0, msgs...); err != nil {
		e.t.Errorf("write: %v", err)
	}
}

// outboxCount returns the rows left in the outbox.
func (e *env) outboxCount() int {
	var n int
	if err := e.db.DB.QueryRow("SELECT COUNT(*) FROM syncworker_outbox").Scan(&n); err != nil {
		e.t.Fatalf("count outbox: %v", err)
	}
	return n
}

// consumer collects what arrives on a queue.
type consumer struct {
	mu     sync.Mutex
	counts map[string]int   // message id -> deliveries
	byKey  map[string][]int // partition key -> seq of first deliveries, in arrival order
	last   map[string]amqp.Delivery
	// onDelivery, if set before messages arrive, is called with each message id (under mu).
	onDelivery func(id string)
}

func (e *env) consume(queue string) *consumer {
	e.t.Helper()
	ch := e.broker.Channel()
	if err := ch.Qos(1000, 0, false); err != nil {
		e.t.Fatalf("qos: %v", err)
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		e.t.Fatalf("consume: %v", err)
	}
	c := &consumer{counts: map[string]int{}, byKey: map[string][]int{}, last: map[string]amqp.Delivery{}}
	go func() {
		for d := range deliveries {
			c.mu.Lock()
			c.counts[d.MessageId]++
			if c.counts[d.MessageId] == 1 {
				key, _ := d.Headers[outbox.HeaderPartitionKey].(string)
				var seq int
				fmt.Sscan(fmt.Sprint(d.Headers["seq"]), &seq)
				c.byKey[key] = append(c.byKey[key], seq)
			}
			c.last[d.MessageId] = d
			if c.onDelivery != nil {
				c.onDelivery(d.MessageId)
			}
			c.mu.Unlock()
			d.Ack(false)
		}
	}()
	return c
}

// distinct returns how many different message ids arrived.
func (c *consumer) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.counts)
}

// maxCopies returns the largest number of deliveries of one message id.
func (c *consumer) maxCopies() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := 0
	for _, n := range c.counts {
		m = max(m, n)
	}
	return m
}

// outOfOrder describes the first key whose messages arrived out of write (seq) order, or
// returns "".
func (c *consumer) outOfOrder() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, seqs := range c.byKey {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] {
				return fmt.Sprintf("key %s: seq %d arrived after seq %d (arrival order %v)", key, seqs[i], seqs[i-1], seqs)
			}
		}
	}
	return ""
}

// waitAll waits until every id in want arrived and the outbox is empty.
func (e *env) waitAll(c *consumer, want map[string]bool, timeout time.Duration) {
	e.t.Helper()
	testenv.Eventually(e.t, timeout, func() (bool, string) {
		c.mu.Lock()
		var missing []string
		for id := range want {
			if c.counts[id] == 0 {
				missing = append(missing, id)
			}
		}
		c.mu.Unlock()
		left := e.outboxCount()
		sort.Strings(missing)
		if len(missing) > 3 {
			missing = append(missing[:3], "...")
		}
		return len(missing) == 0 && left == 0,
			fmt.Sprintf("%d of %d messages arrived; missing %s; %d rows left in the outbox",
				len(want)-len(missing), len(want), strings.Join(missing, ","), left)
	})
}

// writeConcurrently has writers goroutines each commit perWriter messages, one per
// transaction, sleeping a random 0-4 ms between INSERT and COMMIT so rows become visible out
// of id order. It returns the message ids.
func (e *env) writeConcurrently(writers, perWriter, keys int, sleep func() time.Duration) map[string]bool {
	e.t.Helper()
	var mu sync.Mutex
	ids := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				m := e.msg(fmt.Sprintf("key-%d", (w*perWriter+i)%keys), w*perWriter+i)
				m.ID = outbox.NewID()
				if err := writeTx(e.db.DB, sleep(), m); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				ids[m.ID] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatalf("writer: %v", err)
	}
	return ids
}

// writeTx writes msgs in one transaction that waits pause between INSERT and COMMIT.
func writeTx(db *sql.DB, pause time.Duration, msgs ...outbox.Message) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	if err := outbox.Write(context.Background(), tx, msgs...); err != nil {
		tx.Rollback()
		return err
	}
	time.Sleep(pause)
	return tx.Commit()
}

// keyedMessages returns n messages with fresh ids spread over keys partition keys, and the set
// of their ids.
func (e *env) keyedMessages(n, keys int) ([]outbox.Message, map[string]bool) {
	want := make(map[string]bool, n)
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		msgs[i] = e.msg(fmt.Sprintf("key-%d", i%keys), i)
		msgs[i].ID = outbox.NewID()
		want[msgs[i].ID] = true
	}
	return msgs, want
}

// writePaced commits msgs in transactions of chunk messages with a pause between them, in the
// background; the returned channel closes when all are written.
func (e *env) writePaced(msgs []outbox.Message, chunk int, pause time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < len(msgs); i += chunk {
			e.write(msgs[i:min(i+chunk, len(msgs))]...)
			time.Sleep(pause)
		}
	}()
	return done
}

// readCounter counts what a relay reports through the optional ReadMetrics.
type readCounter struct {
	NopMetrics
	ownReads, handOffs, handedRows, deletes, watched atomic.Int64
}

func (c *readCounter) OwnRead()            { c.ownReads.Add(1) }
func (c *readCounter) HandOff(rows int)    { c.handOffs.Add(1); c.handedRows.Add(int64(rows)) }
func (c *readCounter) DeleteStatement(int) { c.deletes.Add(1) }
func (c *readCounter) Watched(rows int)    { c.watched.Add(int64(rows)) }
