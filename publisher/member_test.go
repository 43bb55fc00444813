package publisher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// observed makes cfg log to the test and also records warnings and errors for the test to read.
func observed(t *testing.T, cfg Config, name string) (Config, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.WarnLevel)
	cfg.Logger = zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core)).Named(name)
	return cfg, logs
}

const twoRelaysMessage = "two relays run with one member id"

// Two relays run with one member id (a templated SYNCWORKER_RELAY_MEMBER_ID): only one of them
// holds partitions, the other says why it publishes nothing, no row is published by both and
// per-key order holds. When the first stops, the second takes over and drains the rest.
func TestTwoRelaysWithOneMemberID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	cfg := e.config()
	cfg.MemberID = "same"
	cfg.Partitions = 4
	cfg.BatchSize = 50
	// The holder must not miss its heartbeat for as long as this runs: a lapse hands the member
	// id to the other relay, which the test would take for two relays holding partitions.
	cfg.LeaseTTL = 5 * time.Second
	cfgA, logsA := observed(t, cfg, "a")
	cfgB, logsB := observed(t, cfg, "b")
	a := e.start(cfgA)
	b := e.start(cfgB)

	const total = 3000
	msgs, want := e.keyedMessages(total, 53)
	writeDone := e.writePaced(msgs, 20, 2*time.Millisecond)
	bothHeld := func() {
		t.Helper()
		if oa, ob := a.relay.Owned(), b.relay.Owned(); len(oa) > 0 && len(ob) > 0 {
			t.Fatalf("both relays with member id %q hold partitions: %v and %v", cfg.MemberID, oa, ob)
		}
	}
	var holder, other *running
	var otherLogs *observer.ObservedLogs
	testenv.Eventually(t, 15*time.Second, func() (bool, string) {
		bothHeld()
		switch {
		case len(a.relay.Owned()) == 4 && b.relay.MemberConflict() != nil:
			holder, other, otherLogs = a, b, logsB
		case len(b.relay.Owned()) == 4 && a.relay.MemberConflict() != nil:
			holder, other, otherLogs = b, a, logsA
		default:
			return false, fmt.Sprintf("a owns %v (conflict: %v), b owns %v (conflict: %v)",
				a.relay.Owned(), a.relay.MemberConflict(), b.relay.Owned(), b.relay.MemberConflict())
		}
		return strings.Contains(other.relay.MemberConflict().Error(), "in use by another running relay"),
			fmt.Sprintf("the relay without partitions did not find the other running: %v", other.relay.MemberConflict())
	})
	if err := holder.relay.MemberConflict(); err != nil {
		t.Errorf("the relay holding the partitions reports %v", err)
	}
	err := other.relay.MemberConflict()
	if !errors.Is(err, ErrMemberIDInUse) || !strings.Contains(err.Error(), holder.relay.Instance()) {
		t.Errorf("conflict %v does not name the holder's instance %s", err, holder.relay.Instance())
	}
	// Half the messages go while both run.
	for c.distinct() < total/2 {
		bothHeld()
		if err := other.relay.MemberConflict(); err == nil {
			t.Fatalf("the second relay no longer reports the conflict while the first runs")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := otherLogs.FilterMessage(twoRelaysMessage).Len(); n != 1 {
		t.Errorf("the conflict was logged %d times in a few seconds, want once: %v", n, otherLogs.All())
	}

	stopped := time.Now()
	holder.stop(t)
	testenv.Eventually(t, 3*cfg.LeaseTTL+2*time.Second, func() (bool, string) {
		return len(other.relay.Owned()) == 4 && other.relay.MemberConflict() == nil,
			fmt.Sprintf("after the first stopped, the second owns %v (conflict: %v)", other.relay.Owned(), other.relay.MemberConflict())
	})
	t.Logf("the second relay took over %s after the first stopped", time.Since(stopped).Round(time.Millisecond))
	<-writeDone
	e.waitAll(c, want, 60*time.Second)
	if n := c.maxCopies(); n > 1 {
		t.Errorf("a message arrived %d times: two relays published the same row", n)
	}
	if problem := c.outOfOrder(); problem != "" {
		t.Error(problem)
	}
}

// A relay killed without releasing anything (a crash) leaves its membership and leases live
// for up to the lease TTL. A new relay with the same member id waits for them to expire, then
// takes every partition, without calling the dead run a running relay.
func TestRestartWithSameMemberIDTakesOverAfterTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	cfg := e.config()
	cfg.MemberID = "pod-0"
	cfg.LeaseTTL = 3 * time.Second // long enough that the new run certainly finds the old row live
	cfg.RenewInterval = cfg.LeaseTTL / 4
	first := e.start(cfg)
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return len(first.relay.Owned()) == 16, fmt.Sprintf("first run owns %v", first.relay.Owned())
	})
	first.kill(t)
	killed := time.Now()
	cfg2, logs := observed(t, cfg, "restarted")
	second := e.start(cfg2)
	// Checked at once: the old run's member row lives at most LeaseTTL after its last heartbeat.
	testenv.Eventually(t, cfg.LeaseTTL, func() (bool, string) {
		return second.relay.MemberConflict() != nil, "the new run does not report the old run's member row"
	})
	if owned := second.relay.Owned(); len(owned) != 0 {
		t.Errorf("the new run owns %v while the old run's member row is live", owned)
	}
	want := map[string]bool{}
	var msgs []outbox.Message
	for i := 0; i < 100; i++ {
		m := e.msg(fmt.Sprint("k", i), i)
		m.ID = fmt.Sprint("after-restart-", i)
		want[m.ID] = true
		msgs = append(msgs, m)
	}
	e.write(msgs...)
	// The old leases outlive the old member row by a moment: the takeover may need a second tick.
	testenv.Eventually(t, cfg.LeaseTTL+2*cfg.RenewInterval+2*time.Second, func() (bool, string) {
		return len(second.relay.Owned()) == 16, fmt.Sprintf("%s after the crash the new run owns %v (%v)",
			time.Since(killed).Round(time.Millisecond), second.relay.Owned(), second.relay.MemberConflict())
	})
	t.Logf("the new run took over %s after the crash (lease TTL %s)", time.Since(killed).Round(time.Millisecond), cfg.LeaseTTL)
	e.waitAll(c, want, 30*time.Second)
	if n := logs.FilterMessage(twoRelaysMessage).Len(); n != 0 {
		t.Errorf("the new run called the crashed one a running relay: %v", logs.FilterMessage(twoRelaysMessage).All())
	}
	if second.relay.MemberConflict() != nil {
		t.Errorf("the new run still reports %v", second.relay.MemberConflict())
	}
}

// A relay paused past its lease TTL (GC, SIGSTOP) loses its member id to a relay started with
// the same id meanwhile; when it resumes it hands back every partition it still runs, and
// publishes nothing of what the other now owns.
func TestPausedRelayWhoseMemberIDWasTakenHandsBackItsPartitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	cfg := e.config()
	cfg.MemberID = "same"
	cfg.Partitions = 4
	// Once it holds the member id, relay b must not miss its heartbeat while the test runs: a
	// lapse would hand the id back to relay a.
	cfg.LeaseTTL = 5 * time.Second
	cfgA := cfg
	cfgA.AppID = "relay-a"
	a := e.start(cfgA)
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return len(a.relay.Owned()) == 4, fmt.Sprintf("relay a owns %v", a.relay.Owned())
	})
	a.relay.frozen.Store(true)
	cfgB := cfg
	cfgB.AppID = "relay-b"
	b := e.start(cfgB)
	testenv.Eventually(t, 3*cfg.LeaseTTL+2*time.Second, func() (bool, string) {
		return len(b.relay.Owned()) == 4, fmt.Sprintf("relay b owns %v", b.relay.Owned())
	})
	a.relay.frozen.Store(false)
	testenv.Eventually(t, 5*time.Second, func() (bool, string) {
		return len(a.relay.Owned()) == 0 && errors.Is(a.relay.MemberConflict(), ErrMemberIDInUse),
			fmt.Sprintf("resumed relay a owns %v (conflict: %v)", a.relay.Owned(), a.relay.MemberConflict())
	})
	want := map[string]bool{}
	for i := 0; i < 100; i++ {
		m := e.msg(fmt.Sprint("k", i%7), i)
		m.ID = outbox.NewID()
		want[m.ID] = true
		e.write(m)
	}
	e.waitAll(c, want, 30*time.Second)
	c.mu.Lock()
	for id := range want {
		if app := c.last[id].AppId; app != "relay-b" {
			t.Errorf("message %s was published by %s, whose member id relay b holds", id, app)
		}
	}
	c.mu.Unlock()
	if len(b.relay.Owned()) != 4 || b.relay.MemberConflict() != nil {
		t.Errorf("relay b owns %v (conflict: %v), want all 4", b.relay.Owned(), b.relay.MemberConflict())
	}
}

// Whether the holder of the member id is running is told by its stored expiry changing, not
// by how long the heartbeats took (which used to skew the estimate: a crashed holder seen
// through slow statements was reported as a running relay). A dead holder's expiry stays put
// however its time left reads; one that renewed is reported once.
func TestMemberConflictTellsARunningHolderByItsRenewals(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	r := &Relay{log: zap.New(core), cfg: Config{MemberID: "m", RenewInterval: 250 * time.Millisecond}}
	dead := &outbox.MemberInUseError{Group: "g", Member: "m", Holder: "old", ExpiresIn: 3 * time.Second, HeldUntil: 1_000}
	r.memberInUse(context.Background(), "g", dead)
	slowRead := *dead
	slowRead.ExpiresIn = time.Second
	r.memberInUse(context.Background(), "g", &slowRead)
	if n := logs.FilterMessage("two relays run with one member id").Len(); n != 0 {
		t.Fatalf("a holder that never renewed was reported as running (%d times)", n)
	}
	if err := r.MemberConflict(); !errors.Is(err, ErrMemberIDInUse) || strings.Contains(err.Error(), "another running relay") {
		t.Errorf("conflict while the dead holder's row lives: %v", err)
	}
	renewed := *dead
	renewed.HeldUntil = 2_000
	r.memberInUse(context.Background(), "g", &renewed)
	if n := logs.FilterMessage("two relays run with one member id").Len(); n != 1 {
		t.Errorf("a holder that renewed was reported %d times, want once", n)
	}
	if err := r.MemberConflict(); !strings.Contains(fmt.Sprint(err), "another running relay") {
		t.Errorf("conflict after the holder renewed: %v", err)
	}
}
