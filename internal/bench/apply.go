package bench

import (
	"context"
	"database/sql"
	"fmt"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/subscriber"
)

// Apply measures the subscriber applying row-sync events (outbox.RowUpsert) into MariaDB with
// the inbox, group commit on (the subscriber's default batch, or o.BatchSize) and off (batch
// 1). The events are published to the queue first (not timed); the clock runs from the start
// of the first transaction to the commit of the last event, so the subscriber's start-up
// (dialing, consuming; shown in the note) is left out as the relay scenarios leave out the
// relay's. Half the events insert new rows and half update them with a newer version, so the
// version guard does both kinds of work.
func Apply(ctx context.Context, o Options) ([]Result, error) {
	on, err := applyRun(ctx, o, o.Messages, o.BatchSize)
	if err != nil {
		return nil, err
	}
	on.Scenario = "apply"
	// Without group commit each event is a transaction of its own, several times slower:
	// a quarter of the events keeps the scenario short.
	off, err := applyRun(ctx, o, max(1, o.Messages/4), 1)
	if err != nil {
		return nil, err
	}
	off.Scenario = "apply-batch-1"
	return []Result{on, off}, nil
}

func applyRun(ctx context.Context, o Options, n, batch int) (Result, error) {
	suffix := uniqueSuffix()
	db, _, cleanup, err := benchDatabase(ctx, o.DSN, "swbench_apply_"+suffix)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	if _, err := db.ExecContext(ctx, `CREATE TABLE bench_rows (
		id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(64) NOT NULL, qty INT NOT NULL, note VARCHAR(255) NOT NULL)`); err != nil {
		return Result{}, err
	}
	q, err := newSubscriberQueue(ctx, o.AMQPURL, "apply."+suffix)
	if err != nil {
		return Result{}, err
	}
	defer q.Close()
	if err := publishRowEvents(ctx, o.AMQPURL, q.Exchange, n, o.Window); err != nil {
		return Result{}, err
	}

	rs, err := subscriber.NewRowSync(subscriber.RowSyncConfig{Tables: []subscriber.TableMapping{
		{Source: "rows", Target: "bench_rows", KeyColumns: []string{"id"}}}})
	if err != nil {
		return Result{}, err
	}
	counter := &consumedCounter{want: int64(n)}
	sub, err := subscriber.New(db, subscriber.Config{AMQPURL: o.AMQPURL, Queue: q.Queue, ConsumerName: "bench",
		Handler: rs.Handle, BatchHandler: rs.HandleBatch, BatchSize: batch, RetryDelays: q.Delays, InboxCleanInterval: -1, Metrics: counter, FlushInterval: o.Flush})
	if err != nil {
		return Result{}, err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	cpu := startCPUUse()
	start := time.Now()
	// Labelled for profiles: pprof -tagfocus 'batch=^1$' shows the batch-1 run, '^0$' the other
	// (the subscriber's default batch).
	labels := pprof.Labels("role", "subscriber", "batch", strconv.Itoa(batch))
	go pprof.Do(runCtx, labels, func(ctx context.Context) { done <- sub.Run(ctx) })
	waitErr := waitFor(ctx, 2*time.Minute, func() bool { return counter.consumed.Load() >= int64(n) })
	cpuNote := cpu.summary()
	first, last := counter.span(start)
	elapsed := last.Sub(first)
	stop()
	if err := <-done; err != nil {
		return Result{}, err
	}
	if waitErr != nil {
		return Result{}, fmt.Errorf("subscriber applied %d of %d events: %w", counter.consumed.Load(), n, waitErr)
	}
	if p := counter.parked.Load() + counter.retried.Load(); p > 0 {
		return Result{}, fmt.Errorf("%d events failed (parked or retried)", p)
	}
	if err := checkApplied(ctx, db, n); err != nil {
		return Result{}, err
	}
	note := "group commit off"
	if batch != 1 {
		note = "group commit on"
		if batch > 1 {
			note += fmt.Sprintf(", batch %d", batch)
		}
	}
	startUp := fmt.Sprintf("start-up %.0f ms excluded", float64(first.Sub(start))/float64(time.Millisecond))
	return Result{Messages: n, Seconds: elapsed.Seconds(), MsgsPerS: rate(n, elapsed),
		Note: note + ", row sync + inbox, " + startUp + "; " + cpuNote}, nil
}

// checkApplied checks that the table holds what applying the n events of publishRowEvents in
// order leaves: one row per key, with the qty of its last event.
func checkApplied(ctx context.Context, db *sql.DB, n int) error {
	keys := max(1, n/2)
	var wantRows, wantSum int64
	for id := 0; id < min(keys, n); id++ {
		last := id + (n-1-id)/keys*keys
		wantRows++
		wantSum += int64(last)
	}
	var rows, sum int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(qty), 0) FROM bench_rows").Scan(&rows, &sum); err != nil {
		return err
	}
	if rows != wantRows || sum != wantSum {
		return fmt.Errorf("applied state is wrong: %d rows with qty sum %d, want %d rows with sum %d", rows, sum, wantRows, wantSum)
	}
	return nil
}

// publishRowEvents publishes n row-sync upserts (as the relay would) with confirms.
func publishRowEvents(ctx context.Context, url, exchange string, n, window int) error {
	conn, err := amqpx.Dial(amqpx.DialConfig{URL: url, Name: "syncworker-bench-apply"})
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window))
	keys := max(1, n/2)
	outstanding := 0
	for i := 0; i < n || outstanding > 0; {
		if i < n && outstanding < window {
			id := i % keys
			m, err := outbox.RowUpsert("rows", map[string]any{"id": id},
				map[string]any{"name": fmt.Sprint("row ", id), "qty": i, "note": "bench row"}, uint64(i/keys+1))
			if err != nil {
				return err
			}
			m.ID = outbox.NewID()
			err = ch.PublishWithContext(ctx, exchange, "", false, false, amqp.Publishing{
				DeliveryMode: amqp.Persistent, MessageId: m.ID, Type: m.Type, ContentType: outbox.DefaultContentType,
				Headers: amqp.Table{outbox.HeaderPartitionKey: m.PartitionKey}, Body: m.Payload})
			if err != nil {
				return err
			}
			i++
			outstanding++
			continue
		}
		c, ok := <-confirms
		if !ok {
			return fmt.Errorf("channel closed with %d confirms outstanding", outstanding)
		}
		if !c.Ack {
			return fmt.Errorf("broker nacked delivery %d", c.DeliveryTag)
		}
		outstanding--
	}
	return nil
}

// consumedCounter is the subscriber Metrics the apply scenario watches; it also times the
// work, from the start of the first transaction to the commit that completes want events.
type consumedCounter struct {
	subscriber.NopMetrics
	want                      int64
	consumed, parked, retried atomic.Int64
	firstStart, lastDone      atomic.Int64 // unix ns; 0 until known
}

func (c *consumedCounter) Consumed(n int) {
	if c.consumed.Add(int64(n)) >= c.want {
		c.lastDone.CompareAndSwap(0, time.Now().UnixNano())
	}
}

func (c *consumedCounter) BatchApplied(_ int, latency time.Duration) {
	c.firstStart.CompareAndSwap(0, time.Now().Add(-latency).UnixNano())
}

// span returns when the first transaction started and when the last event committed; call
// it once all events committed. What is not known yet is start and now.
func (c *consumedCounter) span(start time.Time) (first, last time.Time) {
	first, last = start, time.Now()
	if ns := c.firstStart.Load(); ns != 0 {
		first = time.Unix(0, ns)
	}
	if ns := c.lastDone.Load(); ns != 0 {
		last = time.Unix(0, ns)
	}
	return first, last
}

func (c *consumedCounter) Parked()       { c.parked.Add(1) }
func (c *consumedCounter) Retried(_ int) { c.retried.Add(1) }
