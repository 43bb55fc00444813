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
