package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

func TestConsumeAppliesRowSyncEvents(t *testing.T) {
	d := testenv.NewDatabase(t)
	b := testenv.NewBroker(t)
	ctx := context.Background()
	if err := outbox.Migrate(ctx, d.DB); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DB.Exec("CREATE TABLE replica (id BIGINT PRIMARY KEY, name VARCHAR(50) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	q := b.Name("consume")
	ch := b.Channel()
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "consume.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
consume:
  queue: %s
  consumer_name: cli-test
  retry:
    delays: [1s]
    max_attempts: 3
  row_sync:
    tables:
      - source: people
        target: replica
        key_columns: [id]
`, q)), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := outbox.RowUpsert("people", map[string]any{"id": 1}, map[string]any{"name": "Ada"}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.PublishWithContext(ctx, "", q, false, false, amqp.Publishing{MessageId: outbox.NewID(), Type: m.Type,
		Headers: amqp.Table{outbox.HeaderPartitionKey: m.PartitionKey}, Body: m.Payload}); err != nil {
		t.Fatal(err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out, errOut lockedBuffer
	env := &cliEnv{stdout: &out, stderr: &errOut, stdin: strings.NewReader(""), getenv: func(k string) string {
		return map[string]string{"SYNCWORKER_MYSQL_DSN": d.DSN, "SYNCWORKER_AMQP_URL": b.URL}[k]
	}}
	done := make(chan int, 1)
	go func() { done <- run(runCtx, env, []string{"consume", "--config", cfgPath, "--concurrency", "2"}) }()
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		var name string
		d.DB.QueryRow("SELECT name FROM replica WHERE id = 1").Scan(&name) //nolint:errcheck // polled
		return name == "Ada", "row not replicated yet; stderr: " + errOut.String()
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("consume exited %d after cancel; stderr: %s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("consume did not stop after cancel")
	}
}

func TestConsumeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(empty, []byte("consume:\n  queue: q\n"), 0o600)                     //nolint:errcheck
	os.WriteFile(unknown, []byte("consume:\n  queue: q\n  no_such_key: 1\n"), 0o600) //nolint:errcheck
	env := map[string]string{"SYNCWORKER_MYSQL_DSN": "", "SYNCWORKER_AMQP_URL": ""}
	code, _, errOut := runCLI(t, env, "", "consume", "--config", empty)
	if code != 1 || !strings.Contains(errOut, "--dsn") || !strings.Contains(errOut, "--amqp-url") || !strings.Contains(errOut, "row_sync") {
		t.Fatalf("missing settings: code %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, env, "", "consume", "--config", unknown)
	if code != 1 || !strings.Contains(errOut, "no_such_key") {
		t.Fatalf("unknown key: code %d, stderr %q", code, errOut)
	}
}
