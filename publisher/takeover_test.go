package publisher

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/faultproxy"
	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// A relay whose leases ran out while it could not renew them (paused, as by GC or SIGSTOP)
// stops publishing before another relay takes over, and after it resumes it finds it lost them.
func TestPausedRelayStopsActing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	cfgA := e.config()
	cfgA.LeaseTTL = time.Second // the waits below give relay a's leases a few seconds to run out
	cfgA.Partitions = 4
	cfgA.AppID = "relay-a"
	a := e.start(cfgA)
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return len(a.relay.Owned()) == 4, fmt.Sprintf("relay a owns %v", a.relay.Owned())
	})
	a.relay.frozen.Store(true)
	testenv.Eventually(t, 5*time.Second, func() (bool, string) {
		return len(a.relay.Owned()) == 0, fmt.Sprintf("relay a still counts partitions %v whose leases it did not renew", a.relay.Owned())
	})
	// From now on every message must come from b, although a still runs its partitions.
	want := map[string]bool{}
	for i := 0; i < 100; i++ {
		m := e.msg(fmt.Sprint("k", i%7), i)
		m.ID = outbox.NewID()
		want[m.ID] = true
		e.write(m)
	}
	cfgB := cfgA
	cfgB.AppID = "relay-b"
	cfgB.MemberID = ""
	b := e.start(cfgB)
	e.waitAll(c, want, 30*time.Second)
	c.mu.Lock()
	for id := range want {
		if app := c.last[id].AppId; app != "relay-b" {
			t.Errorf("message %s was published by %s after relay a's lease ran out", id, app)
		}
	}
	c.mu.Unlock()
	a.relay.frozen.Store(false)
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		oa, ob := a.relay.Owned(), b.relay.Owned()
		return len(oa) == 2 && len(ob) == 2, fmt.Sprintf("after a resumed: a owns %v, b owns %v", oa, ob)
	})
}

// Database connections are cut several times mid-stream, then hang for longer than the lease:
// the relay reconnects and every message arrives.
func TestDatabaseConnectionCuts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	proxy, err := faultproxy.New(testenv.MySQLAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	viaProxy, err := sql.Open("mysql", testenv.DSNVia(t, e.db.DSN, proxy.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { viaProxy.Close() })
	c := e.consume(e.queue)
	cfg := e.config()
	cfg.LeaseTTL = time.Second // the hang below outlasts the lease
	cfg.DB = viaProxy
	cfg.BatchSize = 50
	run := e.start(cfg)
	const total = 2000
	want := map[string]bool{}
	go func() {
		for i := 0; i < total; i += 20 {
			var msgs []outbox.Message
			for j := i; j < i+20; j++ {
				m := e.msg(fmt.Sprint("k", j%41), j)
				m.ID = fmt.Sprintf("m-%05d", j)
				msgs = append(msgs, m)
			}
			e.write(msgs...)
			time.Sleep(time.Millisecond)
		}
	}()
	for i := 0; i < total; i++ {
		want[fmt.Sprintf("m-%05d", i)] = true
	}
	for cut := 1; cut <= 3; cut++ {
		target := cut * total / 5
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			return c.distinct() >= target, fmt.Sprintf("%d messages arrived before cut %d", c.distinct(), cut)
		})
		proxy.Cut()
	}
	e.waitAll(c, want, 60*time.Second)

	// A network partition without a reset: queries and renewals hang, leases lapse; after it
	// heals the relay carries on.
	proxy.Pause()
	late := map[string]bool{}
	for i := 0; i < 50; i++ {
		m := e.msg("late", i)
		m.ID = fmt.Sprintf("late-%02d", i)
		late[m.ID] = true
		e.write(m)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return len(run.relay.Owned()) == 0, fmt.Sprintf("the relay still counts partitions %v whose leases it cannot renew", run.relay.Owned())
	})
	proxy.Resume()
	e.waitAll(c, late, 60*time.Second)
}

// A relay that lost its leases (paused past them) and takes the same partitions back at once
// starts sweeping each only after the partition's previous sweeper finished: that one's DELETEs
// may still be running, and a second sweeper on the range would publish those rows again.
func TestRetakenPartitionWaitsForItsPreviousSweeper(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	cfg := e.config()
	cfg.LeaseTTL = time.Second // the DELETEs below outlast it, and the leases expire within the wait
	cfg.Partitions = 4
	a := e.start(cfg, func(r *Relay) {
		del := r.deleter.del
		r.deleter.del = func(ctx context.Context, ids []int64) error {
			time.Sleep(2 * time.Second) // outlasts the lease (1 s)
			return del(ctx, ids)
		}
	})
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return len(a.relay.Owned()) == 4, fmt.Sprintf("the relay owns %v", a.relay.Owned())
	})
	msgs, want := e.keyedMessages(200, 20)
	e.write(msgs...)
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return c.distinct() == len(want), fmt.Sprintf("%d of %d published", c.distinct(), len(want))
	})
	a.relay.frozen.Store(true) // while their DELETEs run
	testenv.Eventually(t, 5*time.Second, func() (bool, string) {
		var live int
		if err := e.db.DB.QueryRow("SELECT COUNT(*) FROM syncworker_relay_leases WHERE expires_at > NOW(6)").Scan(&live); err != nil {
			t.Fatal(err)
		}
		return live == 0, fmt.Sprintf("%d leases not expired", live)
	})
	a.relay.frozen.Store(false)
	e.waitAll(c, want, 30*time.Second)
	if n := c.maxCopies(); n != 1 {
		t.Errorf("a message arrived %d times: a retaken partition was swept while its previous sweeper's DELETEs ran", n)
	}
}
