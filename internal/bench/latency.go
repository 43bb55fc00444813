package bench

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/publisher"
	"github.com/syncworker/syncworker/subscriber"
)

// missingExchange is where Options.Failing sends messages: no scenario declares it.
const missingExchange = "syncworker.bench.missing"

// ordinal is "2nd", "3rd", "11th", "21st", ...
func ordinal(n int) string {
	switch {
	case n%10 == 1 && n%100 != 11:
		return fmt.Sprint(n, "st")
	case n%10 == 2 && n%100 != 12:
		return fmt.Sprint(n, "nd")
	case n%10 == 3 && n%100 != 13:
		return fmt.Sprint(n, "rd")
	}
	return fmt.Sprint(n, "th")
}

// latencyGrace is how long messages may still arrive after the writers stopped before the
// missing ones count as lost.
const latencyGrace = 15 * time.Second

// Latency runs o.Writers writer transactions at a steady total rate o.Rate for o.Duration,
// with a relay (default settings, o.Channels and o.Window) and a subscriber (default settings)
// running in this process, and reports commit-to-handler latency: from just before the
// writer's COMMIT to the subscriber's handler seeing the message. The writers do not call
// Relay.Notify unless o.Notify, as a service whose relay is a separate process cannot: the relay
// finds new rows by polling, the realistic default. lost counts messages that had not reached the
// handler latencyGrace after the writers stopped.
func Latency(ctx context.Context, o Options) (Result, error) {
	suffix := uniqueSuffix()
	db, _, cleanup, err := benchDatabase(ctx, o.DSN, "swbench_latency_"+suffix)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	db.SetMaxOpenConns(64)
	db.SetMaxIdleConns(64)
	q, err := newSubscriberQueue(ctx, o.AMQPURL, "latency."+suffix)
	if err != nil {
		return Result{}, err
	}
	defer q.Close()

	var mu sync.Mutex
	committed := map[string]time.Time{}
	var lat latencies
	arrived := map[string]bool{}
	handler := func(_ context.Context, _ *sql.Tx, m subscriber.Message) error {
		now := time.Now()
		time.Sleep(o.HandlerDelay) // after the clock: the delay is the handler's work, not the way to it
		mu.Lock()
		defer mu.Unlock()
		if at, ok := committed[m.ID]; ok && !arrived[m.ID] {
			arrived[m.ID] = true
			lat = append(lat, now.Sub(at))
		}
		return nil
	}
	writer, err := outbox.NewPrepared(ctx, db, outbox.Config{})
	if err != nil {
		return Result{}, err
	}
	defer writer.Close()
	stages := &relayStages{}
	relay, err := publisher.New(publisher.Config{DB: db, AMQP: amqpx.DialConfig{URL: o.AMQPURL},
		Channels: o.Channels, Window: o.Window, MemberID: "bench-" + suffix, Metrics: stages})
	if err != nil {
		return Result{}, err
	}
	sub, err := subscriber.New(db, subscriber.Config{AMQPURL: o.AMQPURL, Queue: q.Queue, ConsumerName: "bench",
		Handler: handler, RetryDelays: q.Delays, InboxCleanInterval: -1, FlushInterval: o.Flush})
	if err != nil {
		return Result{}, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	services, _ := errgroup.WithContext(runCtx)
	services.Go(func() error { return relay.Run(runCtx) })
	services.Go(func() error { return sub.Run(runCtx) })
	defer services.Wait() //nolint:errcheck // errors are reported below
	defer stop()
	if err := waitFor(ctx, 15*time.Second, func() bool { return len(relay.Owned()) == 16 }); err != nil {
		return Result{}, fmt.Errorf("relay did not lease its partitions: %w", err)
	}

	cpu := startCPUUse()
	start := time.Now()
	end := start.Add(o.Duration)
	interval := time.Duration(float64(time.Second) * float64(o.Writers) / float64(o.Rate))
	g, gctx := errgroup.WithContext(ctx)
	var sent, failed int
	for w := 0; w < o.Writers; w++ {
		g.Go(func() error {
			payload := make([]byte, o.PayloadSize)
			// Writer w's message i is due at start + offset + i*interval. A writer that fell
			// behind (a slow commit) catches up at once, so the total rate stays R as long as
			// the database keeps up; msgs_per_s shows what it did.
			offset := interval * time.Duration(w) / time.Duration(o.Writers)
			for i := 0; ; i++ {
				due := start.Add(offset + time.Duration(i)*interval)
				if !due.Before(end) {
					return nil
				}
				select {
				case <-gctx.Done():
					return gctx.Err()
				case <-time.After(time.Until(due)):
				}
				m := outbox.Message{ID: outbox.NewID(), Exchange: q.Exchange, Type: "bench",
					PartitionKey: fmt.Sprint("w", w, "-", i%50), Payload: payload}
				failing := o.Failing > 0 && i%o.Failing == o.Failing-1
				if failing {
					m.Exchange, m.PartitionKey = missingExchange, fmt.Sprint("failing-w", w, "-", i%50)
				}
				if err := latencyTx(gctx, db, writer, m, func(at time.Time) {
					mu.Lock()
					if failing { // never delivered: neither sent nor lost
						failed++
						mu.Unlock()
						return
					}
					committed[m.ID] = at
					sent++
					mu.Unlock()
				}); err != nil {
					return err
				}
				if o.Notify {
					relay.Notify()
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return Result{}, err
	}
	writeTime := time.Since(start)
	waitFor(ctx, latencyGrace, func() bool { //nolint:errcheck // what is missing counts as lost
		mu.Lock()
		defer mu.Unlock()
		return len(arrived) == sent
	})
	mu.Lock()
	defer mu.Unlock()
	r := Result{Scenario: "latency", Messages: sent, Seconds: writeTime.Seconds(), MsgsPerS: rate(sent, writeTime),
		Lost: ptr(sent - len(arrived)),
		Note: fmt.Sprintf("%d writers, commit to handler, relay polling (no Notify)", o.Writers)}
	if o.Notify {
		r.Note = fmt.Sprintf("%d writers, commit to handler, writers call Relay.Notify", o.Writers)
	}
	if o.HandlerDelay > 0 {
		r.Note += fmt.Sprintf(", the handler takes %s per message", o.HandlerDelay)
	}
	if o.Failing > 0 {
		r.Note += fmt.Sprintf(", every %s message of a writer to a missing exchange (%d of them, not counted)",
			ordinal(o.Failing), failed)
	}
	r.Note += "; " + stages.summary() + "; " + cpu.summary()
	if short := rateShortfall(o.Rate, r.MsgsPerS); short != "" {
		r.Note = short + "; " + r.Note
	}
	lat.fill(&r)
	return r, nil
}

// rateShortfall says so when the writers fell clearly short of the rate asked (commits slower
// than their interval): the latencies are then those of a lower rate on a saturated machine,
// and a reader comparing them with a target for the asked rate must know.
func rateShortfall(asked int, got float64) string {
	if got >= 0.95*float64(asked) {
		return ""
	}
	return fmt.Sprintf("writers reached only %.0f of the %d msgs/s asked (commits took longer than their interval)", got, asked)
}

// latencyTx writes m in its own transaction and calls before just before COMMIT.
func latencyTx(ctx context.Context, db *sql.DB, writer *outbox.Writer, m outbox.Message, before func(time.Time)) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if err := writer.Write(ctx, tx, m); err != nil {
		return err
	}
	before(time.Now())
	return tx.Commit()
}

// waitFor polls cond every 10ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
