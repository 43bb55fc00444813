package publisher

import (
	"fmt"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// Rows held back in front of a partition (a failed row waiting for its retry, and in strict
// order every later row of its key) must not keep the rows behind them from being published,
// however many there are compared to MaxScan.
func TestRowsBehindManyHeldBackRowsArePublished(t *testing.T) {
	t.Parallel()
	for _, order := range []Order{OrderStrict, OrderRelaxed} {
		t.Run(order.String(), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			cfg := e.config()
			cfg.Partitions = 1 // every key in one partition, in hash order
			cfg.Order = order
			cfg.BatchSize, cfg.MaxScan = 5, 20
			cfg.RetryInitial, cfg.RetryMax, cfg.MaxAttempts = time.Hour, time.Hour, 1000 // failed rows wait
			cfg.SafetySweep = 50 * time.Millisecond                                      // each sweep reads at most MaxScan rows, then waits

			// The free key sorts after every stuck key: a sweep reading from the start of the
			// range meets all the held-back rows first.
			keys := testenv.KeysInHashOrder("k", 13)
			stuck, free := keys[:12], keys[12]
			missing := e.broker.Name("no-such-exchange")
			var msgs []outbox.Message
			stuckIDs := map[string]bool{}
			for i, key := range stuck {
				follow := 5 // short runs: more of them than MaxScan rows in all
				if i == 0 {
					follow = 150 // one long run, far past MaxScan
				}
				fail := outbox.Message{ID: fmt.Sprint(key, "-fails"), Exchange: missing, PartitionKey: key, Payload: []byte("{}")}
				if order == OrderRelaxed {
					fail.ID = fmt.Sprint(key, "-fails-0")
				}
				msgs = append(msgs, fail)
				for s := 1; s <= follow; s++ {
					m := e.msg(key, s)
					m.ID = fmt.Sprint(key, "-", s)
					if order == OrderRelaxed && i == 0 {
						// Relaxed order holds back only failed rows: make the long run fail too.
						m.Exchange, m.RoutingKey = missing, ""
						m.ID = fmt.Sprint(key, "-fails-", s)
					}
					msgs = append(msgs, m)
					stuckIDs[m.ID] = true
				}
			}
			want := map[string]bool{}
			for s := 1; s <= 10; s++ {
				m := e.msg(free, s)
				m.ID = fmt.Sprint(free, "-", s)
				msgs = append(msgs, m)
				want[m.ID] = true
			}
			c := e.consume(e.queue)
			e.write(msgs...)
			e.start(cfg)

			testenv.Eventually(t, 30*time.Second, func() (bool, string) {
				c.mu.Lock()
				defer c.mu.Unlock()
				got := 0
				for id := range want {
					if c.counts[id] > 0 {
						got++
					}
				}
				return got == len(want), fmt.Sprintf("%d of %d messages of the free key arrived", got, len(want))
			})
			c.mu.Lock()
			defer c.mu.Unlock()
			for id := range c.counts {
				if order == OrderStrict && stuckIDs[id] {
					t.Errorf("%s was published while an earlier message of its key waits for a retry", id)
				}
			}
			if order == OrderRelaxed {
				// The short runs' later rows go ahead of their failed first rows.
				for _, key := range stuck[1:] {
					if c.counts[fmt.Sprint(key, "-5")] == 0 {
						t.Errorf("relaxed order: %s-5 was held back", key)
					}
				}
			}
		})
	}
}
