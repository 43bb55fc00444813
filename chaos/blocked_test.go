//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/publisher"
)

// While the broker applies flow control (a resource alarm: connection.blocked), the relay pauses
// instead of piling publishes into a connection the broker no longer reads. RabbitMQ blocks a
// connection, and tells it so, only when it publishes during the alarm, so the publishes already
// written then wait for their confirms and, with a 1 s confirm timeout, count one failed attempt.
// The relay must hear the notification and pause (its log says so), must not turn the alarm into
// repeated failures or dead rows, and must deliver everything once the alarm clears. (Whether it
// pauses or sits in a blocked socket write cannot be told apart from outside: amqp091's publish
// blocks on the socket too; the log assertion is what shows the notification is handled.) A
// memory alarm blocks every publisher on the broker, so this runs only in the chaos step, alone.
func TestRelayPausesWhileTheBrokerBlocksPublishing(t *testing.T) {
	if !brokerRestart {
		t.Skip("needs control of the broker: run by scripts/test.sh's chaos step (SYNCWORKER_CHAOS_BROKER_RESTART=1)")
	}
	db := testenv.NewDatabase(t)
	broker := testenv.NewBroker(t)
	ctx := context.Background()
	if err := outbox.Migrate(ctx, db.DB); err != nil {
		t.Fatal(err)
	}
	queue := broker.Name("blocked")
	if _, err := broker.Channel().QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	write := func(from, to int) {
		t.Helper()
		tx, err := db.DB.Begin()
		if err != nil {
			t.Fatal(err)
		}
		var msgs []outbox.Message
		for i := from; i < to; i++ {
			msgs = append(msgs, outbox.Message{ID: fmt.Sprintf("b-%d", i), Exchange: outbox.DefaultExchange,
				RoutingKey: queue, PartitionKey: fmt.Sprint(i), Payload: []byte("{}")})
		}
		if err := outbox.Write(ctx, tx, msgs...); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	depth := func() int {
		ch := broker.Channel()
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		return q.Messages
	}
	observed, logs := observer.New(zap.InfoLevel)
	logged := func(snippet string) func() (bool, string) {
		return func() (bool, string) {
			return logs.FilterMessageSnippet(snippet).Len() > 0, "the relay did not log " + strconv.Quote(snippet)
		}
	}
	relay, err := publisher.New(publisher.Config{DB: db.DB, AMQP: amqpx.DialConfig{URL: broker.URL},
		Logger: zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), observed)).Named("relay"), ConfirmTimeout: time.Second, StatsInterval: -1,
		RetryInitial: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("relay Run: %v", err)
		}
	}()

	// The relay publishes first, so the broker counts its connection as a publishing one.
	write(0, 5)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n := depth()
		return n == 5, fmt.Sprintf("%d of 5 messages before the alarm", n)
	})

	if _, err := rabbitmqctl("set_vm_memory_high_watermark", "0.000001"); err != nil {
		t.Fatal(err)
	}
	cleared := false
	clearAlarm := func() {
		if !cleared {
			cleared = true
			if _, err := rabbitmqctl("set_vm_memory_high_watermark", "0.4"); err != nil {
				t.Errorf("clear the memory alarm: %v", err)
			}
		}
	}
	defer clearAlarm()
	write(5, 25)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		out, _ := rabbitmqctl("list_connections", "state")
		return strings.Contains(string(out), "blocked"), "no connection is blocked yet: " + string(out)
	})
	maxAttempts := func() int {
		var n int
		if err := db.DB.QueryRow("SELECT IFNULL(MAX(attempts), 0) FROM syncworker_outbox").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	testenv.Eventually(t, 10*time.Second, logged("broker blocked publishing"))
	if !relay.BrokerBlocked() {
		t.Error("BrokerBlocked() is false while the relay logs that the broker blocks it")
	}
	// Four confirm timeouts long: a relay that kept publishing would have failed rows twice.
	for deadline := time.Now().Add(4 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if n := maxAttempts(); n > 1 {
			t.Fatalf("a row collected %d failed attempts while the broker blocked publishing", n)
		}
	}
	var pending int
	db.DB.QueryRow("SELECT COUNT(*) FROM syncworker_outbox").Scan(&pending)
	if pending != 20 {
		t.Fatalf("%d rows pending during the alarm, want all 20 still in the outbox", pending)
	}

	clearAlarm()
	testenv.Eventually(t, 10*time.Second, logged("broker unblocked publishing"))
	if relay.BrokerBlocked() {
		t.Error("BrokerBlocked() is true after the relay logged that the broker unblocked it")
	}
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		n := depth()
		return n >= 25, fmt.Sprintf("%d of 25 messages after the alarm cleared", n)
	})
	var dead int
	db.DB.QueryRow("SELECT COUNT(*) FROM syncworker_outbox_dead").Scan(&dead)
	if dead != 0 {
		t.Fatalf("%d rows went dead", dead)
	}
}
