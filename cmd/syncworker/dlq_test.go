package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/subscriber"
)

// park publishes a message to queue's parking lot the way the subscriber parks one.
func park(t *testing.T, ch *amqp.Channel, queue, id, typ, reason string, body []byte) {
	t.Helper()
	err := ch.PublishWithContext(context.Background(), "", queue+".parked", true, false, amqp.Publishing{
		MessageId: id, Type: typ, ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body,
		Headers: amqp.Table{
			subscriber.HeaderAttempts: int64(5), subscriber.HeaderError: reason,
			subscriber.HeaderFailedAt: "2026-11-29T10:00:00.5Z", subscriber.HeaderConsumer: "billing",
			subscriber.HeaderOriginalExchange: "", subscriber.HeaderOriginalRoutingKey: queue,
			"sw-partition-key": "k-" + id,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func queueDepth(t *testing.T, ch *amqp.Channel, q string) int {
	t.Helper()
	st, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st.Messages
}

func TestDLQListReplayPurge(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	q := b.Name("dlq")
	applyTestTopology(t, b, q)
	ch := b.Channel()
	park(t, ch, q, "m1", "order.created", "duplicate key 'orders.PRIMARY'", []byte(`{"n":1}`))
	park(t, ch, q, "m2", "order.updated", "column total cannot be null", []byte(`{"n":2}`))
	park(t, ch, q, "m3", "order.created", "deadlock\nfound", []byte(`{"n":3}`))
	park(t, ch, q, "m4", "order.deleted", "table missing", []byte(`{"n":4}`))
	lot := q + ".parked"
	env := map[string]string{"SYNCWORKER_AMQP_URL": b.URL}
	waitParked := func(want int, why string) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, func() (bool, string) {
			n := queueDepth(t, ch, lot)
			return n == want, fmt.Sprintf("%d parked, want %d (%s)", n, want, why)
		})
	}
	waitParked(4, "the test's publishes arrived")

	code, out, errOut := runCLI(t, env, "", "dlq", "list", "--queue", q)
	if code != 0 {
		t.Fatalf("list exited %d: %s", code, errOut)
	}
	for _, want := range []string{"MESSAGE ID", "m1", "order.created", "duplicate key 'orders.PRIMARY'", "deadlock found",
		"2026-11-29T10:00:00.5Z", "billing", "(default)", q, "m4"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		n := queueDepth(t, ch, lot)
		return n == 4, fmt.Sprintf("%d messages parked after list, want all 4 still there", n)
	})
	_, out, _ = runCLI(t, env, "", "dlq", "list", "--queue", q, "--type", "order.created", "--limit", "1")
	if !strings.Contains(out, "m1") || strings.Contains(out, "m3") || strings.Contains(out, "m2") {
		t.Errorf("filtered list with --limit 1:\n%s", out)
	}

	// Replay the created ones: back to q with payload and properties, failure headers gone.
	code, out, errOut = runCLI(t, env, "", "dlq", "replay", "--queue", q, "--type", "order.created")
	if code != 0 || !strings.Contains(out, "2 replayed") || !strings.Contains(errOut, "replayed 2 message(s)") {
		t.Fatalf("replay: code %d, out %q, err %q", code, out, errOut)
	}
	got := map[string]amqp.Delivery{}
	for i := 0; i < 2; i++ {
		var d amqp.Delivery
		testenv.Eventually(t, 10*time.Second, func() (bool, string) {
			var ok bool
			var err error
			d, ok, err = ch.Get(q, true)
			return ok && err == nil, fmt.Sprintf("replayed message %d not in %s (err %v)", i+1, q, err)
		})
		got[d.MessageId] = d
	}
	if d := got["m1"]; string(d.Body) != `{"n":1}` || d.Type != "order.created" || d.ContentType != "application/json" ||
		d.Headers["sw-partition-key"] != "k-m1" || d.Headers[subscriber.HeaderAttempts] != nil || d.Headers[subscriber.HeaderError] != nil {
		t.Errorf("replayed m1: body %s type %q headers %v", d.Body, d.Type, d.Headers)
	}
	if string(got["m3"].Body) != `{"n":3}` {
		t.Errorf("m3 not replayed intact: %v", got)
	}
	// Messages the replay took but did not select are requeued when its channel closes; the
	// broker may count them a moment later.
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		n := queueDepth(t, ch, lot)
		return n == 2, fmt.Sprintf("%d left parked after replaying 2 of 4", n)
	})

	// A message whose original queue is gone is returned: replay fails and keeps it parked.
	if err := ch.PublishWithContext(context.Background(), "", lot, true, false, amqp.Publishing{MessageId: "m5",
		Headers: amqp.Table{subscriber.HeaderOriginalExchange: "", subscriber.HeaderOriginalRoutingKey: "swt-nowhere"}, Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	waitParked(3, "m5 arrived")
	code, _, errOut = runCLI(t, env, "", "dlq", "replay", "--queue", q, "--message-id", "m5")
	if code == 0 || !strings.Contains(errOut, "returned") || !strings.Contains(errOut, "stays parked") {
		t.Fatalf("replay of an unroutable message: code %d, stderr %q", code, errOut)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		n := queueDepth(t, ch, lot)
		return n == 3, fmt.Sprintf("%d parked, want 3 (m2, m4, m5)", n)
	})

	// Purge asks; "no" deletes nothing.
	code, out, errOut = runCLI(t, env, "no\n", "dlq", "purge", "--queue", q)
	if code == 0 || !strings.Contains(out, "Delete all 3 messages") || !strings.Contains(errOut, "not confirmed") {
		t.Fatalf("purge answered no: code %d, out %q, err %q", code, out, errOut)
	}
	if n := queueDepth(t, ch, lot); n != 3 {
		t.Fatalf("%d parked after a refused purge, want 3", n)
	}
	code, out, _ = runCLI(t, env, "", "dlq", "purge", "--queue", q, "--reason-contains", "table missing", "--yes")
	if code != 0 || !strings.Contains(out, "1 parked messages purged") {
		t.Fatalf("filtered purge: code %d, out %q", code, out)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		n := queueDepth(t, ch, lot)
		return n == 2, fmt.Sprintf("%d parked, want 2 (m2, m5)", n)
	})
	code, out, _ = runCLI(t, env, "yes\n", "dlq", "purge", "--queue", q)
	if code != 0 || !strings.Contains(out, "2 parked messages purged") {
		t.Fatalf("confirmed purge: code %d, out %q", code, out)
	}
	if n := queueDepth(t, ch, lot); n != 0 {
		t.Fatalf("%d parked after purge", n)
	}
}

// A parked message whose original exchange was deleted meanwhile: the broker closes the
// publishing channel with 404. Replay must say so and keep the message parked, not report a
// return it never got.
func TestDLQReplayToMissingExchange(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	q := b.Name("dlqgone")
	applyTestTopology(t, b, q)
	ch := b.Channel()
	lot := q + ".parked"
	gone := b.Name("gone-exchange")
	if err := ch.PublishWithContext(context.Background(), "", lot, true, false, amqp.Publishing{MessageId: "m-gone",
		Headers: amqp.Table{subscriber.HeaderOriginalExchange: gone, subscriber.HeaderOriginalRoutingKey: "k"}, Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		n := queueDepth(t, ch, lot)
		return n == 1, fmt.Sprintf("%d parked, want 1", n)
	})
	code, _, errOut := runCLI(t, map[string]string{"SYNCWORKER_AMQP_URL": b.URL}, "", "dlq", "replay", "--queue", q)
	if code != 1 || !strings.Contains(errOut, fmt.Sprintf("exchange %q does not exist", gone)) ||
		!strings.Contains(errOut, "404") || !strings.Contains(errOut, "stays parked") || strings.Contains(errOut, "no queue is bound") {
		t.Fatalf("replay to a missing exchange: code %d, stderr %q", code, errOut)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		n := queueDepth(t, ch, lot)
		return n == 1, fmt.Sprintf("%d parked after the failed replay, want 1", n)
	})
}
