package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/topology"
)

// managementURL is the test broker's management API: SYNCWORKER_TEST_AMQP_MANAGEMENT_URL, or
// port 15672 on the broker's host (scripts/test.sh enables the plugin).
func managementURL(t *testing.T, b *testenv.Broker) string {
	if v := os.Getenv("SYNCWORKER_TEST_AMQP_MANAGEMENT_URL"); v != "" {
		return v
	}
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + u.Hostname() + ":15672"
}

// applyTestTopology declares queue (classic, retry tiers 1s and 10s, parking lot) and returns
// the topology file.
func applyTestTopology(t *testing.T, b *testenv.Broker, queue string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`
queues:
  - name: %s
    type: classic
    retry:
      delays: [1s, 10s]
`, queue)), 0o600); err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	b.Track(queue+".retry.1s", queue+".retry.10s", queue+".parked")
	if _, err := topology.Apply(context.Background(), b.Conn, topo); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStatusShowsBacklogDeadLeasesAndQueueDepths(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	b := testenv.NewBroker(t)
	ctx := context.Background()
	if err := outbox.Migrate(ctx, d.DB); err != nil {
		t.Fatal(err)
	}
	const partitions = 4
	want := make([]int64, partitions)
	for i := 0; i < 30; i++ {
		key := fmt.Sprint("key-", i)
		want[outbox.PartitionOf(outbox.PartitionHash(key), partitions)]++
		if err := outbox.Write(ctx, d.DB, outbox.Message{Exchange: outbox.DefaultExchange, RoutingKey: "nowhere",
			PartitionKey: key, Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, stmt := range []string{
		// Three rows failed once and wait for their next attempt.
		`UPDATE syncworker_outbox SET attempts = 1, next_attempt_at = NOW(6) + INTERVAL 1 HOUR ORDER BY id LIMIT 3`,
		`INSERT INTO syncworker_outbox_dead (outbox_id, partition_hash, message_id, exchange_name, routing_key, partition_key, payload, created_at, attempts)
		 VALUES (1, 7, 'dead-1', '', 'q', 'k', '{}', NOW(6), 10), (2, 7, 'dead-2', '', 'q', 'k', '{}', NOW(6), 10)`,
		`INSERT INTO syncworker_relay_leases (lease_group, partition_no, owner, token, expires_at) VALUES
		 ('default/4', 0, 'relay-a', 1, NOW(6) + INTERVAL 1 HOUR), ('default/4', 1, 'relay-b', 1, NOW(6) - INTERVAL 1 HOUR),
		 ('default/4', 2, '', 0, NOW(6)), ('default/4', 3, 'relay-a', 2, NOW(6) + INTERVAL 1 HOUR)`,
	} {
		if _, err := d.DB.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	q := b.Name("status")
	topoPath := applyTestTopology(t, b, q)
	ch := b.Channel()
	for i := 0; i < 5; i++ {
		if err := ch.PublishWithContext(ctx, "", q, true, false, amqp.Publishing{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.PublishWithContext(ctx, "", q+".parked", true, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	// Two of the five are delivered and held unacked by a consumer.
	hold := b.Channel()
	hold.Qos(2, 0, false) //nolint:errcheck
	if _, err := hold.Consume(q, "", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{"SYNCWORKER_MYSQL_DSN": d.DSN, "SYNCWORKER_AMQP_URL": b.URL}
	code, out, errOut := runCLI(t, env, "", "status", "--partitions", "4", "--topology", topoPath)
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, errOut)
	}
	for _, wantLine := range []string{
		"OUTBOX: 30 pending (3 waiting for a retry)",
		"RETRYING",
		"DEAD ROWS: 2 ",
		"relay-a",
		"(expired)",
		q + ".retry.1s",
		q + ".retry.10s",
		"parking lot",
		"unacked counts unknown",
	} {
		if !strings.Contains(out, wantLine) {
			t.Errorf("status output lacks %q:\n%s", wantLine, out)
		}
	}

	var rep statusReport
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		code, out, errOut := runCLI(t, env, "", "status", "--partitions", "4", "--topology", topoPath, "--json",
			"--management-url", managementURL(t, b))
		if code != 0 {
			return false, errOut
		}
		rep = statusReport{}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			return false, err.Error()
		}
		// The management API's statistics lag by up to 5 s.
		return len(rep.Queues) == 4 && rep.Queues[0].Unacked != nil && *rep.Queues[0].Unacked == 2 &&
			rep.Queues[0].Ready == 3 && rep.Queues[3].Ready == 1, out
	})
	for p := 0; p < partitions; p++ {
		if rep.Partitions[p].Pending != want[p] || (want[p] > 0) != (rep.Partitions[p].OldestAge > 0) {
			t.Errorf("partition %d: %+v, want %d pending", p, rep.Partitions[p], want[p])
		}
	}
	retrying := int64(0)
	for _, p := range rep.Partitions {
		retrying += p.Retrying
	}
	if rep.Backlog != 30 || rep.Retrying != 3 || retrying != 3 || rep.Dead != 2 || len(rep.Leases) != 4 || rep.Leases[0].Owner != "relay-a" || !rep.Leases[0].Valid || rep.Leases[1].Valid {
		t.Errorf("report: %+v", rep)
	}
	main, tier, lot := rep.Queues[0], rep.Queues[1], rep.Queues[3]
	if main.Name != q || main.Ready != 3 || main.Consumers != 1 || tier.Kind != "retry 1s" || lot.Name != q+".parked" || lot.Ready != 1 || lot.Kind != "parking lot" {
		t.Errorf("queues: %+v", rep.Queues)
	}
}

// A failing management API costs only the unacked column, asked once: ready counts and
// consumers from AMQP are still shown, and the API's error is a note.
func TestStatusWithAFailingManagementAPI(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	b := testenv.NewBroker(t)
	if err := outbox.Migrate(context.Background(), d.DB); err != nil {
		t.Fatal(err)
	}
	q := b.Name("mgmtdown")
	topoPath := applyTestTopology(t, b, q)
	for i := 0; i < 3; i++ {
		if err := b.Channel().PublishWithContext(context.Background(), "", q, true, false, amqp.Publishing{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	var requests atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer api.Close()
	env := map[string]string{"SYNCWORKER_MYSQL_DSN": d.DSN, "SYNCWORKER_AMQP_URL": b.URL}
	var out string
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		var code int
		var errOut string
		requests.Store(0)
		code, out, errOut = runCLI(t, env, "", "status", "--topology", topoPath, "--management-url", api.URL)
		return code == 0 && regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(q)+`\s+queue\s+3\s+unknown\s+0\s*$`).MatchString(out),
			fmt.Sprintf("code %d, want the queue's row with 3 ready, unacked unknown, 0 consumers:\n%s%s", code, out, errOut)
	})
	if !strings.Contains(out, "note: unacked counts unknown: management API: GET") || !strings.Contains(out, "503") {
		t.Errorf("no note with the management API's error:\n%s", out)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests to the failing management API, want 1 (stop after the first failure)", n)
	}
}
