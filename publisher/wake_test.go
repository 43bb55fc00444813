package publisher

import (
	"fmt"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
)

// An idle relay finds new rows through its watcher, and at once through Notify. Safety sweeps
// and (for Notify) polling are set to a minute, far beyond the test's patience, so only the
// wake-up path under test can deliver the messages in time.
func TestIdleRelayWakeUp(t *testing.T) {
	t.Parallel()
	for _, notify := range []bool{false, true} {
		t.Run(fmt.Sprintf("notify=%v", notify), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			c := e.consume(e.queue)
			cfg := e.config()
			cfg.SafetySweep = time.Minute
			if notify {
				cfg.PollInterval = time.Minute
			}
			run := e.start(cfg)
			testenv.Eventually(t, 10*time.Second, func() (bool, string) {
				return len(run.relay.Owned()) == 16 && run.relay.anyIdle(), "relay not idle on all partitions yet"
			})
			for i := 0; i < 5; i++ {
				m := e.msg(fmt.Sprint("k", i), i)
				m.ID = fmt.Sprint("wake-", i)
				e.write(m)
				if notify {
					run.relay.Notify()
				}
				want := map[string]bool{m.ID: true}
				e.waitAll(c, want, 20*time.Second)
			}
		})
	}
}

// A relay that has found nothing for a while looks at most every IdlePollInterval instead of
// every PollInterval, and still publishes the first row after the lull.
func TestQuietRelayLooksLessOften(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	cfg := e.config()
	cfg.SafetySweep = time.Minute // only the watcher can deliver the row in time
	cfg.IdlePollInterval = 250 * time.Millisecond
	run := e.start(cfg)
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return len(run.relay.Owned()) == 16 && run.relay.anyIdle(), "relay not idle on all partitions yet"
	})
	time.Sleep(idleAfter + cfg.IdlePollInterval) // quiet long enough to reach the idle pace
	before := run.relay.looks.Load()
	const quiet = 2 * time.Second
	time.Sleep(quiet)
	// At PollInterval (5ms) the relay would look ~400 times; at the idle pace at most 9. A slow
	// machine only looks less often.
	if looks := run.relay.looks.Load() - before; looks > int64(quiet/cfg.IdlePollInterval)+1 {
		t.Fatalf("%d looks in %s of quiet, want at most %d", looks, quiet, quiet/cfg.IdlePollInterval+1)
	}
	m := e.msg("k", 0)
	m.ID = "after-the-lull"
	e.write(m)
	e.waitAll(c, map[string]bool{m.ID: true}, 20*time.Second)
}
