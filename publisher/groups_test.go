package publisher

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
)

// Relays of one group given different partition counts (a rollout that changes
// relay.partitions while old relays run) form two lease groups that each publish every row:
// each relay reports the other group, with an error in its log, until the other stops.
func TestRelaysOfAnotherLeaseGroupAreReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfgA, logsA := observed(t, e.config(), "a")
	cfgA.Partitions = 4
	cfgB, logsB := observed(t, e.config(), "b")
	cfgB.Partitions = 2
	a := e.start(cfgA)
	b := e.start(cfgB)
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		ga, gb := a.relay.OtherGroups(), b.relay.OtherGroups()
		return maps.Equal(ga, map[string]int{LeaseGroup("default", 2): 1}) && maps.Equal(gb, map[string]int{LeaseGroup("default", 4): 1}),
			fmt.Sprintf("relay a sees other groups %v, relay b %v", ga, gb)
	})
	for name, logs := range map[string]interface{ Len() int }{
		"a": logsA.FilterMessageSnippet("another lease group"), "b": logsB.FilterMessageSnippet("another lease group"),
	} {
		if logs.Len() != 1 {
			t.Errorf("relay %s logged the other group %d times, want once (then at most every minute)", name, logs.Len())
		}
	}
	b.stop(t)
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return len(a.relay.OtherGroups()) == 0, fmt.Sprintf("relay a still sees %v after b stopped", a.relay.OtherGroups())
	})
}
