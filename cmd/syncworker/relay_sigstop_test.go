package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/internal/faultproxy"
	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/publisher"
)

// A relay stopped with SIGSTOP past its lease: another relay takes its partitions, and when the
// stopped one continues, with rows waiting in those partitions, it notices that it lost them
// before it publishes anything.
func TestRelaySIGSTOPPastItsLease(t *testing.T) {
	db := testenv.NewDatabase(t)
	broker := testenv.NewBroker(t)
	ctx := context.Background()
	if err := outbox.Migrate(ctx, db.DB); err != nil {
		t.Fatal(err)
	}
	queue := broker.Name("q")
	ch := broker.Channel()
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	copies := map[string]int{}
	byA := map[string]bool{} // ids relay a published, at least once
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for d := range deliveries {
			mu.Lock()
			copies[d.MessageId]++
			if d.AppId == "relay-a" {
				byA[d.MessageId] = true
			}
			mu.Unlock()
		}
	}()
	heldLeases := func(owner string) int {
		var n int
		db.DB.QueryRow("SELECT COUNT(*) FROM syncworker_relay_leases WHERE owner = ? AND expires_at > NOW(6)", owner).Scan(&n)
		return n
	}
	writeBatch := func(prefix string, n int) map[string]bool {
		ids := map[string]bool{}
		var msgs []outbox.Message
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("%s-%03d", prefix, i)
			ids[id] = true
			msgs = append(msgs, outbox.Message{ID: id, Exchange: outbox.DefaultExchange, RoutingKey: queue,
				PartitionKey: fmt.Sprint("k", i%13), Payload: []byte(`{}`)})
		}
		tx, _ := db.DB.Begin()
		if err := outbox.Write(ctx, tx, msgs...); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	waitArrived := func(ids map[string]bool) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			for id := range ids {
				if copies[id] == 0 {
					return false, "missing " + id
				}
			}
			return true, ""
		})
	}

	bin := buildBinary(t)
	a := exec.Command(bin, "relay", "--partitions", "4", "--lease-ttl", "1s", "--app-id", "relay-a", "--member-id", "relay-a")
	a.Env = append(os.Environ(), "SYNCWORKER_MYSQL_DSN="+db.DSN, "SYNCWORKER_AMQP_URL="+broker.URL)
	var stderr lockedBuffer
	a.Stderr = &stderr
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Process.Signal(syscall.SIGCONT); a.Process.Kill() })
	lostLeases := func() int { return strings.Count(stderr.String(), "lost the lease of a partition") }
	// running is how many partitions relay a sweeps by its own log: a lease in the database is
	// not yet a partition it runs (its Acquire commits before it starts the sweeper).
	running := func() int {
		log := stderr.String()
		return strings.Count(log, "took partition") + strings.Count(log, "adopting a partition") -
			strings.Count(log, "lost the lease of a partition") - strings.Count(log, "released partition")
	}
	testenv.Eventually(t, 15*time.Second, func() (bool, string) {
		return heldLeases("relay-a") == 4 && running() == 4,
			fmt.Sprintf("relay a holds %d leases and runs %d partitions, want 4 and 4", heldLeases("relay-a"), running())
	})
	if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}

	// Relay b publishes through a proxy, so the test can hold its messages back and leave rows
	// pending for relay a to find when it continues.
	proxy, err := faultproxy.New(broker.Host())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	b, err := publisher.New(publisher.Config{DB: db.DB, AMQP: amqpx.DialConfig{URL: broker.URLVia(proxy.Addr())},
		Partitions: 4, LeaseTTL: 5 * time.Second, RenewInterval: 1250 * time.Millisecond,
		AppID: "relay-b", MemberID: "relay-b", StatsInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	bctx, stopB := context.WithCancel(ctx)
	bDone := make(chan error, 1)
	go func() { bDone <- b.Run(bctx) }()
	defer func() {
		stopB()
		if err := <-bDone; err != nil {
			t.Errorf("relay b: %v", err)
		}
	}()
	testenv.Eventually(t, 15*time.Second, func() (bool, string) {
		return len(b.Owned()) == 4, fmt.Sprintf("relay b owns %v", b.Owned())
	})
	waitArrived(writeBatch("taken-over", 100))

	proxy.Pause()
	pending := writeBatch("pending", 200)
	// Leases relay a lost and took again before it was stopped (a lapse on a loaded machine) are
	// not the ones this test is about.
	if n := running(); n != 4 {
		t.Fatalf("relay a stopped while running %d partitions, want 4\n%s", n, stderr.String())
	}
	lostBefore := lostLeases()
	if err := a.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Relay a runs again with partitions it believes it owns and rows waiting in them. It must
	// find out that it lost them before it publishes anything.
	testenv.Eventually(t, 15*time.Second, func() (bool, string) {
		n := lostLeases() - lostBefore
		return n == 4, fmt.Sprintf("relay a reported %d lost leases since it continued, want 4", n)
	})
	mu.Lock()
	for id := range byA {
		if strings.HasPrefix(id, "pending") {
			t.Errorf("relay a published %s with a lease it had lost", id)
		}
	}
	mu.Unlock()
	proxy.Resume()
	waitArrived(pending)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return heldLeases("relay-a") == 2 && heldLeases("relay-b") == 2,
			fmt.Sprintf("a holds %d, b holds %d; want 2 and 2", heldLeases("relay-a"), heldLeases("relay-b"))
	})

	if err := a.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err != nil {
		t.Errorf("relay a exited with %v after SIGTERM\n%s", err, stderr.String())
	}
}
