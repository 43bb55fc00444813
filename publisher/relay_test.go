package publisher

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/faultproxy"
	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// Rows become visible out of id order (ids are handed out at INSERT, transactions commit in
// any order): every one must still be published, none lost, none more than twice.
func TestConcurrentWritersOutOfOrderCommits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	e.start(e.config())
	want := e.writeConcurrently(16, 200, 1000, func() time.Duration {
		return time.Duration(rand.IntN(5000)) * time.Microsecond
	})
	e.waitAll(c, want, 60*time.Second)
	if got := c.distinct(); got != len(want) {
		t.Errorf("%d distinct messages arrived, want %d", got, len(want))
	}
	if n := c.maxCopies(); n > 2 {
		t.Errorf("a message arrived %d times, want at most twice", n)
	}
}

// Messages of one key reach a single consumer in the order they were written.
func TestPerKeyOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	cfg := e.config()
	cfg.BatchSize = 100 // many sweeps, several channels
	e.start(cfg)
	const keys, perKey, writers = 50, 60, 10
	want := map[string]bool{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perKey; i++ {
				// Each writer owns keys w, w+writers, ...: one key's messages commit in seq order.
				var batch []outbox.Message
				for k := w; k < keys; k += writers {
					m := e.msg(fmt.Sprintf("key-%d", k), i)
					m.ID = outbox.NewID()
					batch = append(batch, m)
				}
				e.write(batch...)
				mu.Lock()
				for _, m := range batch {
					want[m.ID] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	e.waitAll(c, want, 60*time.Second)
	if problem := c.outOfOrder(); problem != "" {
		t.Fatal(problem)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byKey) != keys {
		t.Fatalf("messages of %d keys arrived, want %d", len(c.byKey), keys)
	}
	for key, seqs := range c.byKey {
		if len(seqs) != perKey {
			t.Errorf("key %s: %d messages arrived, want %d", key, len(seqs), perKey)
		}
	}
}

// The broker connection is cut several times mid-stream: everything still arrives.
func TestBrokerConnectionCuts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	proxy, err := faultproxy.New(e.broker.Host())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	c := e.consume(e.queue)
	cfg := e.config()
	cfg.AMQP.URL = e.broker.URLVia(proxy.Addr())
	cfg.MaxAttempts = 1000 // a cut counts as an attempt; none of these may go dead
	cfg.BatchSize = 100
	e.start(cfg)

	const total = 3000
	msgs, want := e.keyedMessages(total, 97)
	writeDone := e.writePaced(msgs, 50, 2*time.Millisecond)
	for cut := 1; cut <= 4; cut++ {
		// Cut once the relay reconnected and more messages flowed, so each cut hits a live stream.
		target := cut * total / 6
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			return c.distinct() >= target && proxy.Accepted() >= cut,
				fmt.Sprintf("%d messages arrived before cut %d, want %d; %d connections", c.distinct(), cut, target, proxy.Accepted())
		})
		proxy.Cut()
	}
	<-writeDone
	e.waitAll(c, want, 60*time.Second)
	// On a fast machine every message may be through before the last cut's reconnect.
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return proxy.Accepted() >= 5, fmt.Sprintf("the relay connected %d times through the proxy, want at least 5 (4 cuts)", proxy.Accepted())
	})
}

// Two relays share the partitions; when one is killed the other takes them all over and
// every message arrives.
func TestFailoverWhenARelayDies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	cfg := e.config()
	cfg.LeaseTTL = time.Second // the survivor takes the dead relay's partitions once they expire
	cfg.Partitions = 8
	cfg.BatchSize = 50
	a := e.start(cfg)
	b := e.start(cfg)
	testenv.Eventually(t, 15*time.Second, func() (bool, string) {
		oa, ob := a.relay.Owned(), b.relay.Owned()
		return len(oa) > 0 && len(ob) > 0 && len(oa)+len(ob) == 8,
			fmt.Sprintf("relay a owns %v, relay b owns %v", oa, ob)
	})

	const total = 2000
	msgs, want := e.keyedMessages(total, 53)
	writeDone := e.writePaced(msgs, 20, time.Millisecond)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return c.distinct() >= total/4, fmt.Sprintf("%d messages arrived", c.distinct())
	})
	a.kill(t)
	testenv.Eventually(t, 3*cfg.LeaseTTL+5*time.Second, func() (bool, string) {
		owned := b.relay.Owned()
		return len(owned) == 8, fmt.Sprintf("the surviving relay owns %v", owned)
	})
	<-writeDone
	e.waitAll(c, want, 60*time.Second)
	if n := c.maxCopies(); n > 2 {
		t.Errorf("a message arrived %d times, want at most twice", n)
	}
}
