package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// Relay and consume run in-process with their ops servers on random ports: /readyz is 503
// while the consumer's queue is missing and 200 once it consumes; after messages flowed the
// /metrics series have the counts.
func TestRelayAndConsumeServeMetricsAndReadiness(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	b := testenv.NewBroker(t)
	ctx := context.Background()
	if err := outbox.Migrate(ctx, d.DB); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DB.Exec("CREATE TABLE replica (id BIGINT PRIMARY KEY, name VARCHAR(50) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	q := b.Name("ops")
	cfgPath := filepath.Join(t.TempDir(), "syncworker.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
http:
  listen: 127.0.0.1:0
log:
  level: info
relay:
  partitions: 2
  stats_interval: 50ms
consume:
  queue: %s
  consumer_name: ops-test
  row_sync:
    tables:
      - source: people
        target: replica
        key_columns: [id]
`, q)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SYNCWORKER_MYSQL_DSN": d.DSN, "SYNCWORKER_AMQP_URL": b.URL, "SYNCWORKER_CONFIG": cfgPath}

	// The queue does not exist yet: the consumer cannot consume, so it is not ready.
	consume := startCommand(t, env, "consume")
	consumeURL := consume.opsAddr(t)
	if code, body := httpGet(t, consumeURL+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	if code, body := httpGet(t, consumeURL+"/readyz"); code != 503 || !strings.Contains(body, `"consumer":"not consuming`) || !strings.Contains(body, `"database":"ok"`) {
		t.Fatalf("consume /readyz without its queue = %d %s, want 503 naming the consumer", code, body)
	}
	// The container health check (`syncworker health`) tells the same by its exit code.
	consumeAddr := strings.TrimPrefix(consumeURL, "http://")
	if code, out, errOut := runCLI(t, nil, "", "health", "--ready", "--http-listen", consumeAddr); code != 1 || !strings.Contains(out, `"consumer":"not consuming`) {
		t.Fatalf("health --ready of consume without its queue: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "", "health", "--http-listen", consumeAddr); code != 0 {
		t.Fatalf("health of a live consume: code %d, stderr %q", code, errOut)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) { // and says why
		_, body := httpGet(t, consumeURL+"/readyz")
		return strings.Contains(body, "NOT_FOUND"), "consume /readyz does not give the broker's reason: " + body
	})
	if _, err := b.Channel().QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		code, body := httpGet(t, consumeURL+"/readyz")
		return code == 200 && strings.Contains(body, `"broker":"ok"`), fmt.Sprintf("consume /readyz = %d %s", code, body)
	})
	if code, out, errOut := runCLI(t, nil, "", "health", "--ready", "--http-listen", consumeAddr); code != 0 {
		t.Fatalf("health --ready of a consuming consume: code %d, stdout %q, stderr %q", code, out, errOut)
	}

	const n = 40
	for i := 1; i <= n; i++ {
		m, err := outbox.RowUpsert("people", map[string]any{"id": i}, map[string]any{"name": fmt.Sprint("p", i)}, 1)
		if err != nil {
			t.Fatal(err)
		}
		m.Exchange, m.RoutingKey = outbox.DefaultExchange, q
		if err := outbox.Write(ctx, d.DB, m); err != nil {
			t.Fatal(err)
		}
	}
	relay := startCommand(t, env, "relay")
	relayURL := relay.opsAddr(t)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		var got int
		d.DB.QueryRow("SELECT COUNT(*) FROM replica").Scan(&got) //nolint:errcheck // polled
		return got == n, fmt.Sprintf("%d of %d rows replicated", got, n)
	})
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		code, body := httpGet(t, relayURL+"/readyz")
		return code == 200 && strings.Contains(body, `"leases":"ok"`), fmt.Sprintf("relay /readyz = %d %s", code, body)
	})
	if code, out, errOut := runCLI(t, nil, "", "health", "--ready", "--http-listen", strings.TrimPrefix(relayURL, "http://")); code != 0 {
		t.Fatalf("health --ready of a ready relay: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	// status sees the live relay's leases (its lease group naming matches the publisher's).
	code, out, errOut := runCLI(t, env, "", "status", "--json")
	if code != 0 || strings.Count(out, `"owner": "`+memberOf(t, relay)+`"`) != 2 {
		t.Errorf("status with a live relay: code %d, stderr %s, out:\n%s", code, errOut, out)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, body := httpGet(t, relayURL+"/metrics")
		ok := metricValue(body, "syncworker_relay_published_total") == n &&
			metricValue(body, "syncworker_relay_confirm_latency_seconds_count") == n &&
			metricValue(body, "syncworker_relay_publish_latency_seconds_count") == n &&
			metricValue(body, "syncworker_outbox_backlog") == 0 &&
			metricValue(body, "syncworker_outbox_oldest_pending_age_seconds") == 0 &&
			metricValue(body, "syncworker_relay_dead_total") == 0 &&
			metricValue(body, "syncworker_relay_partitions_owned") == 2 &&
			metricValue(body, "syncworker_relay_broker_blocked") == 0 &&
			metricValue(body, "syncworker_relay_returned_total") == 0 &&
			metricValue(body, "syncworker_relay_own_reads_total") >= 1 &&
			metricValue(body, "syncworker_relay_handoffs_total") >= 0 &&
			metricValue(body, "syncworker_relay_delete_statements_total") >= 1 &&
			metricValue(body, `go_sql_open_connections{db_name="syncworker"}`) >= 1
		return ok, "relay metrics:\n" + grepLines(body, "syncworker_") + "\n" + grepLines(body, "go_sql_")
	})
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		_, body := httpGet(t, consumeURL+"/metrics")
		ok := metricValue(body, "syncworker_consume_consumed_total") == n &&
			metricValue(body, "syncworker_consume_duplicates_skipped_total") == 0 &&
			metricValue(body, "syncworker_consume_parked_total") == 0 &&
			metricValue(body, "syncworker_consume_consuming") == 1 &&
			metricValue(body, "syncworker_consume_apply_latency_seconds_count") >= 1 &&
			metricValue(body, "syncworker_consume_batch_size_sum") == n &&
			// Its lanes reuse their connections instead of dialing new ones.
			metricValue(body, `go_sql_max_idle_closed_total{db_name="syncworker"}`) == 0 &&
			metricValue(body, `go_sql_open_connections{db_name="syncworker"}`) >= 1
		return ok, "consume metrics:\n" + grepLines(body, "syncworker_") + "\n" + grepLines(body, "go_sql_")
	})
}

func grepLines(body, prefix string) string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// memberOf reads the relay's member id from its "relay configured" log line.
func memberOf(t *testing.T, bg *background) string {
	t.Helper()
	for _, line := range strings.Split(bg.stderr.String(), "\n") {
		var entry struct {
			Msg    string `json:"msg"`
			Member string `json:"member"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "relay configured" {
			return entry.Member
		}
	}
	t.Fatalf("no 'relay configured' line:\n%s", bg.stderr.String())
	return ""
}
