package publisher

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// While one partition works through a backlog and another waits, the watcher used to walk the
// backlog page by page on every look (every few milliseconds) until its mark passed it: more
// rows than the partition read itself. It must leave the backlog to its partition, and still
// bring the waiting partition a new row at once.
func TestWatcherLeavesABusyPartitionsBacklogAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	cfg := e.config()
	cfg.Partitions = 2
	cfg.BatchSize = 20 // many sweeps, so the backlog lasts while the other partition waits
	cfg.SafetySweep = time.Minute
	reads := &readCounter{}
	cfg.Metrics = reads
	const backlog = 3000
	want := map[string]bool{}
	var msgs []outbox.Message
	for i := range backlog {
		m := e.msg(testenv.KeyIn("p", 0, 2), i)
		m.ID = fmt.Sprint("busy-", i)
		msgs = append(msgs, m)
		want[m.ID] = true
	}
	e.write(msgs...)
	e.start(cfg)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n := c.distinct()
		return n >= 100, fmt.Sprintf("%d of the backlog's %d messages arrived", n, backlog)
	})
	// A row of the waiting partition whose transaction commits after a later row's: it must
	// still be found at once (SafetySweep is a minute), whichever way the watcher looks.
	lateTx, err := e.db.DB.Begin()
	if err != nil {
		t.Fatal(err)
	}
	late := e.msg(testenv.KeyIn("late", 1, 2), 0)
	late.ID = "late-0"
	if err := outbox.Write(context.Background(), lateTx, late); err != nil {
		t.Fatal(err)
	}
	idle := e.msg(testenv.KeyIn("p", 1, 2), 0)
	idle.ID = "idle-0"
	e.write(idle)
	want[idle.ID] = true
	arrived := func(id string) func() (bool, string) {
		return func() (bool, string) {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.counts[id] > 0, id + " has not arrived"
		}
	}
	testenv.Eventually(t, 30*time.Second, arrived(idle.ID))
	if n := c.distinct() - 1; n >= backlog {
		t.Errorf("the waiting partition's row arrived after the whole backlog (%d messages)", n)
	}
	if err := lateTx.Commit(); err != nil {
		t.Fatal(err)
	}
	want[late.ID] = true
	testenv.Eventually(t, 10*time.Second, arrived(late.ID))
	e.waitAll(c, want, 60*time.Second)
	if n := c.maxCopies(); n != 1 {
		t.Errorf("a message arrived %d times, want once", n)
	}
	if problem := c.outOfOrder(); problem != "" {
		t.Error(problem)
	}
	if w := reads.watched.Load(); w > backlog {
		t.Errorf("the watcher read %d rows while a %d-row backlog drained; want it to leave the backlog to its partition", w, backlog)
	}
	t.Logf("the watcher read %d rows", reads.watched.Load())
}

// The watcher looks again after 1ms when a look found work, backs off to PollInterval while
// quiet, and only after idleAfter of quiet further to IdlePollInterval; work or Notify brings
// it back to 1ms at once, and a time with every partition busy counts as activity too. A
// failed look waits PollInterval.
func TestLookPace(t *testing.T) {
	cfg := &Config{PollInterval: 5 * time.Millisecond, IdlePollInterval: 40 * time.Millisecond}
	t0 := time.Now()
	p := lookPace{interval: cfg.PollInterval, quietSince: t0}
	step := func(woke bool, at time.Duration, want time.Duration) {
		t.Helper()
		p.looked(woke, false, t0.Add(at), cfg)
		if p.interval != want {
			t.Fatalf("after a look at %s (woke %v): wait %s, want %s", at, woke, p.interval, want)
		}
	}
	step(true, 0, time.Millisecond)
	step(false, 10*time.Millisecond, 2*time.Millisecond)
	step(false, 20*time.Millisecond, 4*time.Millisecond)
	step(false, 30*time.Millisecond, 5*time.Millisecond)
	step(false, idleAfter-time.Millisecond, 5*time.Millisecond) // quiet, but not for long enough
	step(false, idleAfter, 10*time.Millisecond)
	step(false, idleAfter+20*time.Millisecond, 20*time.Millisecond)
	step(false, idleAfter+40*time.Millisecond, 40*time.Millisecond)
	step(false, idleAfter+80*time.Millisecond, 40*time.Millisecond)
	step(true, idleAfter+120*time.Millisecond, time.Millisecond)
	step(false, idleAfter+200*time.Millisecond, 2*time.Millisecond) // quiet again, from its start
	p.notified(t0.Add(2 * idleAfter))
	if p.interval != time.Millisecond {
		t.Fatalf("after Notify: wait %s, want 1ms", p.interval)
	}
	step(false, 2*idleAfter+time.Millisecond, 2*time.Millisecond)
	p.busy(t0.Add(3 * idleAfter)) // all partitions swept meanwhile: not quiet
	step(false, 3*idleAfter+time.Millisecond, 4*time.Millisecond)
	step(false, 3*idleAfter+2*time.Millisecond, 5*time.Millisecond)
	p.looked(false, true, t0.Add(4*idleAfter), cfg)
	if p.interval != cfg.PollInterval {
		t.Fatalf("after a failed look: wait %s, want %s", p.interval, cfg.PollInterval)
	}
}
