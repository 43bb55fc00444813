package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// Two `syncworker relay` with one --member-id: the second is not ready, its /readyz and the
// syncworker_relay_member_conflict gauge say why, and it logs the error once. When the first
// stops, the second becomes ready.
func TestTwoRelayCommandsWithOneMemberID(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	b := testenv.NewBroker(t)
	if err := outbox.Migrate(t.Context(), d.DB); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SYNCWORKER_MYSQL_DSN": d.DSN, "SYNCWORKER_AMQP_URL": b.URL}
	// The checks below each look once: the first relay must not let its member row or a lease
	// lapse meanwhile, or the second would take the member id (renewed every 1.25 s, a lapse
	// needs a stall of over 4 s).
	args := []string{"relay", "--member-id", "same", "--partitions", "2", "--lease-ttl", "5s", "--http-listen", "127.0.0.1:0"}
	first := startCommand(t, env, args...)
	firstURL := first.opsAddr(t)
	testenv.Eventually(t, 15*time.Second, func() (bool, string) {
		code, body := httpGet(t, firstURL+"/readyz")
		return code == 200, fmt.Sprintf("first relay /readyz = %d %s", code, body)
	})
	second := startCommand(t, env, args...)
	secondURL := second.opsAddr(t)
	testenv.Eventually(t, 15*time.Second, func() (bool, string) {
		code, body := httpGet(t, secondURL+"/readyz")
		return code == 503 && strings.Contains(body, `member id \"same\" is in use by another running relay`),
			fmt.Sprintf("second relay /readyz = %d %s", code, body)
	})
	if _, body := httpGet(t, secondURL+"/metrics"); metricValue(body, "syncworker_relay_member_conflict") != 1 ||
		metricValue(body, "syncworker_relay_partitions_owned") != 0 {
		t.Errorf("second relay: member_conflict %v, partitions_owned %v; want 1 and 0",
			metricValue(body, "syncworker_relay_member_conflict"), metricValue(body, "syncworker_relay_partitions_owned"))
	}
	if _, body := httpGet(t, firstURL+"/metrics"); metricValue(body, "syncworker_relay_member_conflict") != 0 ||
		metricValue(body, "syncworker_relay_partitions_owned") != 2 {
		t.Errorf("first relay: member_conflict %v, partitions_owned %v; want 0 and 2",
			metricValue(body, "syncworker_relay_member_conflict"), metricValue(body, "syncworker_relay_partitions_owned"))
	}
	if code, _ := httpGet(t, firstURL+"/readyz"); code != 200 {
		t.Errorf("first relay /readyz = %d with a second relay waiting, want 200", code)
	}
	if n := strings.Count(second.stderr.String(), "is in use by another running relay"); n != 1 {
		t.Errorf("the second relay logged the conflict %d times, want once:\n%s", n, second.stderr.String())
	}
	first.stop(t)
	testenv.Eventually(t, 15*time.Second, func() (bool, string) {
		code, body := httpGet(t, secondURL+"/readyz")
		return code == 200, fmt.Sprintf("after the first stopped, second relay /readyz = %d %s", code, body)
	})
}
