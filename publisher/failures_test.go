package publisher

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// deadRows returns the dead messages.
func (e *env) deadRows() []outbox.DeadMessage {
	e.t.Helper()
	store, err := outbox.NewDeadStore(e.db.DB, outbox.Tables{})
	if err != nil {
		e.t.Fatal(err)
	}
	dead, err := store.List(context.Background(), 0, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	return dead
}

// An unroutable message is retried with backoff, then dead with the reason; dead retry brings
// it back once it can be routed.
func TestUnroutableGoesDeadAndRetryBringsItBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	exchange := e.broker.Name("nobody-bound")
	ch := e.broker.Channel()
	if err := ch.ExchangeDeclare(exchange, "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	missing := e.broker.Name("no-such-exchange")
	cfg := e.config()
	cfg.MaxAttempts = 3
	run := e.start(cfg)

	unroutable := outbox.Message{ID: "unroutable-1", Exchange: exchange, RoutingKey: "rk", Payload: []byte("{}")}
	noExchange := outbox.Message{ID: "no-exchange-1", Exchange: missing, RoutingKey: "rk", Payload: []byte("{}")}
	e.write(unroutable, noExchange)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		dead := e.deadRows()
		return len(dead) == 2 && e.outboxCount() == 0, fmt.Sprintf("%d dead, %d in the outbox", len(dead), e.outboxCount())
	})
	for _, d := range e.deadRows() {
		if d.Attempts != 3 {
			t.Errorf("%s died after %d attempts, want 3", d.MessageID, d.Attempts)
		}
		want := map[string]string{"unroutable-1": "NO_ROUTE", "no-exchange-1": "exchange does not exist"}[d.MessageID]
		if !strings.Contains(d.LastError, want) {
			t.Errorf("%s: last error %q, want it to mention %q", d.MessageID, d.LastError, want)
		}
		if d.DiedAt.Sub(d.CreatedAt) < cfg.RetryInitial/2 {
			t.Errorf("%s died %s after it was written: no backoff between attempts", d.MessageID, d.DiedAt.Sub(d.CreatedAt))
		}
	}
	// The relay must have stayed healthy for other messages meanwhile.
	c := e.consume(e.queue)
	ok := e.msg("k", 1)
	ok.ID = "routable-1"
	e.write(ok)
	e.waitAll(c, map[string]bool{"routable-1": true}, 30*time.Second)

	// Make the unroutable message routable and retry it.
	if err := ch.QueueBind(e.queue, "rk", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	store, _ := outbox.NewDeadStore(e.db.DB, outbox.Tables{})
	var retryID int64
	for _, d := range e.deadRows() {
		if d.MessageID == "unroutable-1" {
			retryID = d.ID
		}
	}
	n, err := store.Retry(context.Background(), []int64{retryID})
	if err != nil || n != 1 {
		t.Fatalf("Retry = %d, %v; want 1 row", n, err)
	}
	run.relay.Notify()
	e.waitAll(c, map[string]bool{"unroutable-1": true}, 30*time.Second)
	if dead := e.deadRows(); len(dead) != 1 || dead[0].MessageID != "no-exchange-1" {
		t.Errorf("dead after retry: %+v, want only no-exchange-1", dead)
	}
}

// In strict order a failing message holds back the later messages of its key until it is
// dead; in relaxed order they go ahead while it waits.
func TestOrderModesAfterAFailure(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name      string
		order     Order
		keyWindow int
	}{{"strict-exact", OrderStrict, 1}, {"strict", OrderStrict, 0}, {"relaxed", OrderRelaxed, 0}} {
		order := mode.order
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			exchange := e.broker.Name("nobody-bound")
			if err := e.broker.Channel().ExchangeDeclare(exchange, "direct", true, false, false, false, nil); err != nil {
				t.Fatal(err)
			}
			cfg := e.config()
			cfg.Order = order
			cfg.KeyWindow = mode.keyWindow
			cfg.MaxAttempts = 4
			if order == OrderRelaxed {
				cfg.MaxAttempts = 1000 // never dies during the test
			}
			c := e.consume(e.queue)
			// For each delivery of "second", whether "first" was dead when it arrived.
			var afterDeath []bool
			c.onDelivery = func(id string) {
				if id == "second" {
					afterDeath = append(afterDeath, len(e.deadRows()) > 0)
				}
			}
			e.start(cfg)
			first := outbox.Message{ID: "first", Exchange: exchange, RoutingKey: "rk", PartitionKey: "K", Payload: []byte("{}")}
			second := e.msg("K", 2)
			second.ID = "second"
			other := e.msg("other", 1)
			other.ID = "other-key"
			e.write(first, second, other) // one commit: one sweep sees them together

			if order == OrderRelaxed {
				testenv.Eventually(t, 30*time.Second, func() (bool, string) {
					return c.distinct() == 2, fmt.Sprintf("%d of 2 messages arrived", c.distinct())
				})
				if len(e.deadRows()) != 0 {
					t.Errorf("the failing message went dead; it should still be retrying")
				}
				return
			}
			// Strict: "second" is (re)published once "first" is dead. With KeyWindow 1 it never
			// reaches the broker before; without, a copy may have been in flight already.
			testenv.Eventually(t, 30*time.Second, func() (bool, string) {
				c.mu.Lock()
				defer c.mu.Unlock()
				n := len(afterDeath)
				return n > 0 && afterDeath[n-1], fmt.Sprintf("deliveries of second (after first died?): %v", afterDeath)
			})
			c.mu.Lock()
			defer c.mu.Unlock()
			if mode.keyWindow == 1 && (len(afterDeath) != 1 || !afterDeath[0]) {
				t.Errorf("deliveries of second (after first died?): %v, want one, after", afterDeath)
			}
			if len(afterDeath) > 2 {
				t.Errorf("second arrived %d times, want at most twice (in flight once, then after first)", len(afterDeath))
			}
			if c.counts["other-key"] == 0 {
				t.Errorf("a message of another key was held back")
			}
		})
	}
}

// A partition whose range holds a row waiting for its retry is woken for new rows, not handed
// them: a hand-off read of its range would read the waiting rows only to find that it cannot
// serve it, and the partition's own sweep would read them again (with many failing rows, every
// new row cost two reads of all of them). New rows, of other keys and of the failed one, are
// still published (the failed key's after its row, here never: it waits a minute).
func TestWatcherWakesAPartitionHoldingAWaitingRow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	run := e.start(oneRetryingPartition(e.config(), time.Minute)) // only the watcher brings new rows in time
	failing := outbox.Message{ID: "waits-1", Exchange: e.broker.Name("no-such-exchange"), RoutingKey: "rk",
		PartitionKey: "failing", Payload: []byte("{}")}
	e.write(failing)
	waitHoldingARetry(t, run.relay)
	before := run.relay.rangeReads.Load()
	writeOneByOne(t, e, c, "after", 10)
	if reads := run.relay.rangeReads.Load() - before; reads != 0 {
		t.Errorf("the watcher read the range %d times for a partition it could only wake", reads)
	}
	held := e.msg("failing", 99)
	held.ID = "held-behind-waits-1"
	e.write(held)
	time.Sleep(500 * time.Millisecond)
	if c.distinct() != 10 {
		t.Errorf("%d messages arrived, want the 10 of other keys only (strict order holds the failed key)", c.distinct())
	}
}

// In strict order the sweeps of a partition leave the hash of a row waiting for its retry
// unread until the row is due: the 200 rows held back behind it are not read again for every
// new row of another key (each sweep read the waiting row and 64 held ones before skipping).
func TestSweepsLeaveAWaitingRowsHashUnread(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	msgs := []outbox.Message{{ID: "stuck-0", Exchange: e.broker.Name("no-such-exchange"), RoutingKey: "rk",
		PartitionKey: "stuck", Payload: []byte("{}")}}
	for i := 1; i <= 200; i++ {
		m := e.msg("stuck", i)
		m.ID = fmt.Sprint("stuck-", i)
		msgs = append(msgs, m)
	}
	e.write(msgs...)
	run := e.start(oneRetryingPartition(e.config(), time.Minute)) // no read of everything during the test
	waitHoldingARetry(t, run.relay)
	before := run.relay.scanned.Load()
	writeOneByOne(t, e, c, "free", 10)
	// Each new row costs a sweep that reads it, and maybe a second that finds nothing.
	if scanned := run.relay.scanned.Load() - before; scanned > 30 {
		t.Errorf("sweeps scanned %d rows for 10 new ones: the held-back rows were read again", scanned)
	}
	if n := c.distinct(); n != 10 {
		t.Errorf("%d messages arrived, want the 10 free ones (the held-back key waits for its row)", n)
	}
}

// A hash left unread for its waiting row is read again when the row is due: the row is retried
// (here it has become routable meanwhile) and the rows held back behind it follow in order,
// while rows of other keys went ahead.
func TestSkippedHashIsReadWhenItsRowIsDue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	exchange := e.broker.Name("declared-later")
	first := e.msg("stuck", 0)
	first.ID, first.Exchange, first.RoutingKey = "stuck-0", exchange, "rk"
	msgs := []outbox.Message{first}
	want := map[string]bool{first.ID: true}
	for i := 1; i <= 20; i++ {
		m := e.msg("stuck", i)
		m.ID = fmt.Sprint("stuck-", i)
		msgs, want[m.ID] = append(msgs, m), true
	}
	e.write(msgs...)
	run := e.start(oneRetryingPartition(e.config(), time.Second)) // only the due time brings the row back in time
	waitHoldingARetry(t, run.relay)
	for i := range 3 {
		m := e.msg(fmt.Sprint("k", i), i)
		m.ID = fmt.Sprint("free-", i)
		e.write(m)
		want[m.ID] = true
	}
	ch := e.broker.Channel()
	if err := ch.ExchangeDeclare(exchange, "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(e.queue, "rk", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	e.waitAll(c, want, 30*time.Second)
	if bad := c.outOfOrder(); bad != "" {
		t.Error(bad)
	}
}

// oneRetryingPartition is cfg for one partition whose failed rows wait retry before their next
// attempt, and whose safety sweeps do not come during a test.
func oneRetryingPartition(cfg Config, retry time.Duration) Config {
	cfg.Partitions = 1
	cfg.RetryInitial, cfg.RetryMax = retry, retry
	cfg.SafetySweep = time.Minute
	return cfg
}

// waitHoldingARetry waits until the relay's partition waits for work, its range holding a
// row that waits for its retry.
func waitHoldingARetry(t *testing.T, r *Relay) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		r.mu.Lock()
		p := r.parts[0]
		r.mu.Unlock()
		return p != nil && p.holdsWaiting.Load() && p.ticket.Load() != 0, "partition not waiting with its failed row yet"
	})
}

// writeOneByOne writes n messages of keys k0, k1, ... (ids prefix-0, ...), each once the one
// before arrived at c, which had received none of them before.
func writeOneByOne(t *testing.T, e *env, c *consumer, prefix string, n int) {
	t.Helper()
	start := c.distinct()
	for i := range n {
		m := e.msg(fmt.Sprint("k", i), i)
		m.ID = fmt.Sprint(prefix, "-", i)
		e.write(m)
		testenv.Eventually(t, 20*time.Second, func() (bool, string) {
			return c.distinct() == start+i+1, fmt.Sprintf("%d of %d messages arrived", c.distinct()-start, i+1)
		})
	}
}

// An exchange that exists but refuses publishes (here an internal one; a missing write
// permission is the same to the relay) closes the channel under every publish outstanding on
// it. Only the rows to that exchange count the failure and die after MaxAttempts; the rows of
// other partitions sharing the channel are published again without losing an attempt.
func TestAnExchangeThatRefusesPublishesFailsOnlyItsOwnRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	internal := e.broker.Name("internal")
	if err := e.broker.Channel().ExchangeDeclare(internal, "fanout", true, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	msgs, want := e.keyedMessages(3000, 300)
	for i := range 10 {
		refused := outbox.Message{ID: fmt.Sprintf("refused-%d", i), Exchange: internal, RoutingKey: "rk",
			PartitionKey: fmt.Sprintf("refused-%d", i), Payload: []byte("{}")}
		msgs = slices.Insert(msgs, i*300, refused)
	}
	e.write(msgs...)
	c := e.consume(e.queue)
	cfg := e.config()
	cfg.Channels = 1 // every partition's publishes share the channel the refused ones close
	cfg.MaxAttempts = 2
	e.start(cfg)

	e.waitAll(c, want, 60*time.Second) // the refused rows died: the outbox is empty
	dead := e.deadRows()
	for _, d := range dead {
		if !strings.HasPrefix(d.MessageID, "refused-") {
			t.Errorf("routable message %s is dead after %d attempts: %s", d.MessageID, d.Attempts, d.LastError)
			continue
		}
		if d.Attempts != 2 || !strings.Contains(d.LastError, "internal exchange") {
			t.Errorf("%s died after %d attempts with %q; want 2 attempts and the broker's reason", d.MessageID, d.Attempts, d.LastError)
		}
	}
	if len(dead) != 10 {
		t.Errorf("%d dead messages, want the 10 refused ones", len(dead))
	}
}
