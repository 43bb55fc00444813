package publisher

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// An idle relay publishes new rows through hand-offs: the watcher reads the ranges of the
// partitions it saw rows for, and they publish what it read without reading their ranges
// themselves. Every message arrives once, each key's in write order.
func TestWaitingPartitionsPublishHandedOverRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	cfg := e.config()
	cfg.SafetySweep = time.Minute // after the first sweeps, only hand-offs publish in time
	reads := &readCounter{}
	cfg.Metrics = reads
	run := e.start(cfg)
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		n := len(run.relay.openTickets())
		return n == 16, fmt.Sprintf("%d of 16 partitions wait for work", n)
	})
	before := reads.ownReads.Load()

	msgs, want := e.keyedMessages(300, 30)
	<-e.writePaced(msgs, 5, 10*time.Millisecond) // 60 commits
	e.waitAll(c, want, 30*time.Second)
	if n := c.maxCopies(); n != 1 {
		t.Errorf("a message arrived %d times, want once", n)
	}
	if problem := c.outOfOrder(); problem != "" {
		t.Error(problem)
	}
	// Without hand-offs every commit costs sweeps of its own (a few hundred here); a few may
	// still happen if a lease renewal is late under load.
	if own := reads.ownReads.Load() - before; own > 16 {
		t.Errorf("partitions read their own ranges %d times for 60 commits, want hand-offs to serve them", own)
	}
	if reads.handOffs.Load() == 0 || reads.handedRows.Load() == 0 || reads.deletes.Load() == 0 {
		t.Errorf("ReadMetrics saw %d hand-offs of %d rows and %d DELETEs, want all of them counted",
			reads.handOffs.Load(), reads.handedRows.Load(), reads.deletes.Load())
	}
}

// In strict order a row written while an earlier row of its key waits for a retry is held back
// until that row is dead, also when its partition is waiting for work: the watcher leaves a
// range with a waiting row to the partition's own sweep.
func TestRowBehindARetryIsNotHandedOver(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	exchange := e.broker.Name("nobody-bound") // publishes to it come back unroutable
	if err := e.broker.Channel().ExchangeDeclare(exchange, "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.MaxAttempts = 3
	cfg.RetryInitial, cfg.RetryMax = 400*time.Millisecond, 400*time.Millisecond
	c := e.consume(e.queue)
	var afterDeath []bool // per delivery of "second": was "first" dead by then?
	c.onDelivery = func(id string) {
		if id == "second" {
			afterDeath = append(afterDeath, len(e.deadRows()) > 0)
		}
	}
	run := e.start(cfg)
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return len(run.relay.openTickets()) == 16, "not every partition waits for work yet"
	})
	e.write(outbox.Message{ID: "first", Exchange: exchange, RoutingKey: "rk", PartitionKey: "K", Payload: []byte("{}")})
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		var attempts int
		e.db.DB.QueryRow("SELECT attempts FROM syncworker_outbox WHERE message_id = 'first'").Scan(&attempts) //nolint:errcheck // 0 until it failed once
		return attempts >= 1, "first has not failed yet"
	})
	second := e.msg("K", 2)
	second.ID = "second"
	e.write(second) // while first waits for its retry

	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return c.distinct() == 1, "second has not arrived"
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(afterDeath) != 1 || !afterDeath[0] {
		t.Errorf("deliveries of second (was first dead by then?): %v, want one, after first died", afterDeath)
	}
}

// The partition's side of the hand-off protocol: it shows a ticket only while it waits, takes
// a hand-off for that ticket, and sweeps instead of taking one meant for an earlier wait.
func TestPartitionTakesOnlyAHandoffForTheTicketItShows(t *testing.T) {
	t.Parallel()
	p := &partition{r: &Relay{reads: NopMetrics{}}, wake: make(chan struct{}, 1), handoff: make(chan handoff, 1), deletions: newDeletions()}
	rows := []outbox.PendingRow{{ID: 7}}
	handTo := func(ticketDelta int64) {
		go func() {
			for p.ticket.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			p.handoff <- handoff{ticket: uint64(int64(p.ticket.Load()) + ticketDelta), rows: rows}
		}()
	}
	ctx := context.Background()
	if p.ticket.Load() != 0 {
		t.Fatal("a partition that does not wait shows a ticket")
	}

	handTo(0)
	if got := p.waitForWork(ctx, time.Minute); len(got) != 1 || got[0].ID != 7 {
		t.Fatalf("hand-off for the ticket shown: got %v, want the row handed over", got)
	}
	if p.ticket.Load() != 0 {
		t.Fatal("the partition still shows a ticket after its wait")
	}
	shown := p.tickets

	handTo(-1) // meant for the previous wait
	if got := p.waitForWork(ctx, time.Minute); got != nil {
		t.Fatalf("stale hand-off: got %v, want nil (sweep the range instead)", got)
	}
	if p.tickets <= shown {
		t.Errorf("ticket %d shown after ticket %d; tickets must never repeat", p.tickets, shown)
	}
}
