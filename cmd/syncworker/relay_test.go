package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// buildBinary builds the syncworker binary once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "syncworker")
	cmd := exec.Command("go", "build", "-o", bin, ".") // the go that runs the tests is on PATH
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// SIGTERM with a backlog: the relay stops claiming, settles what is in flight, releases its
// leases and exits 0; no row is lost, and a second run publishes the rest.
func TestRelaySIGTERMWithBacklog(t *testing.T) {
	db := testenv.NewDatabase(t)
	broker := testenv.NewBroker(t)
	if err := outbox.Migrate(context.Background(), db.DB); err != nil {
		t.Fatal(err)
	}
	queue := broker.Name("q")
	ch := broker.Channel()
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	const total = 6000
	ids := make([]string, 0, total)
	for i := 0; i < total; i += 500 {
		var msgs []outbox.Message
		for j := i; j < i+500; j++ {
			id := outbox.NewID()
			ids = append(ids, id)
			msgs = append(msgs, outbox.Message{ID: id, Exchange: outbox.DefaultExchange, RoutingKey: queue,
				PartitionKey: fmt.Sprint("k", j%31), Payload: []byte(`{}`)})
		}
		tx, _ := db.DB.Begin()
		if err := outbox.Write(context.Background(), tx, msgs...); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for d := range deliveries {
			mu.Lock()
			seen[d.MessageId]++
			mu.Unlock()
		}
	}()
	arrived := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}

	bin := buildBinary(t)
	startRelay := func(flags ...string) (*exec.Cmd, *lockedBuffer) {
		cmd := exec.Command(bin, append([]string{"relay"}, flags...)...)
		cmd.Env = append(os.Environ(), "SYNCWORKER_MYSQL_DSN="+db.DSN, "SYNCWORKER_AMQP_URL="+broker.URL)
		stderr := &lockedBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			if t.Failed() {
				t.Logf("relay output:\n%s", stderr.String())
			}
		})
		return cmd, stderr
	}
	stopRelay := func(cmd *exec.Cmd, stderr *lockedBuffer) {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("relay exited with %v after SIGTERM, want exit 0\n%s", err, stderr)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("relay did not exit within 30s of SIGTERM\n%s", stderr)
		}
	}

	// Small batches over one channel keep a backlog around long enough to interrupt.
	cmd, stderr := startRelay("--partitions", "2", "--channels", "1", "--batch-size", "10", "--window", "10")
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		return arrived() >= 300, fmt.Sprintf("%d messages arrived", arrived())
	})
	stopRelay(cmd, stderr)

	var left, leased, members int
	db.DB.QueryRow("SELECT COUNT(*) FROM syncworker_outbox").Scan(&left)
	db.DB.QueryRow("SELECT COUNT(*) FROM syncworker_relay_leases WHERE owner <> '' AND expires_at > NOW(6)").Scan(&leased)
	db.DB.QueryRow("SELECT COUNT(*) FROM syncworker_relay_members").Scan(&members)
	t.Logf("after SIGTERM: %d arrived, %d rows left", arrived(), left)
	if leased != 0 || members != 0 {
		t.Errorf("after SIGTERM %d leases are still held and %d members registered, want 0 and 0", leased, members)
	}
	// None lost: every message either arrived or is still in the outbox.
	inOutbox := map[string]bool{}
	rows, err := db.DB.Query("SELECT message_id FROM syncworker_outbox")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		rows.Scan(&id)
		inOutbox[id] = true
	}
	rows.Close()
	mu.Lock()
	for _, id := range ids {
		if seen[id] == 0 && !inOutbox[id] {
			t.Errorf("message %s neither arrived nor is in the outbox", id)
		}
	}
	mu.Unlock()

	cmd, stderr = startRelay()
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		return arrived() == total, fmt.Sprintf("%d of %d messages arrived", arrived(), total)
	})
	stopRelay(cmd, stderr)
}

// publisher/README.md's knob table documents every relay.* flag of `syncworker relay`.
func TestPublisherREADMEListsEveryRelayFlag(t *testing.T) {
	doc, err := os.ReadFile("../../publisher/README.md")
	if err != nil {
		t.Fatal(err)
	}
	table := string(doc[bytes.Index(doc, []byte("## Knobs")):])
	_, _, help := runCLI(t, nil, "", "relay", "--help")
	flags := regexp.MustCompile(`(?m)^  -([a-z-]+) .*\n.*\(relay\.`).FindAllStringSubmatch(help, -1)
	if len(flags) < 10 {
		t.Fatalf("found only %d relay.* flags in relay --help:\n%s", len(flags), help)
	}
	for _, f := range flags {
		if !strings.Contains(table, "`--"+f[1]+"`") {
			t.Errorf("publisher/README.md's knob table lacks `--%s`", f[1])
		}
	}
}
