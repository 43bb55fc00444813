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
	"github.com/syncworker/syncworker/subscriber"
	"github.com/syncworker/syncworker/topology"
)

// park puts a message into queue's parking lot as the subscriber parks one, and returns once
// the broker confirmed it: a command run right after must find it there.
func park(t *testing.T, ch *amqp.Channel, queue, id, typ, reason string, body []byte) {
	t.Helper()
	if err := ch.Confirm(false); err != nil { // a no-op on a channel in confirm mode already
		t.Fatal(err)
	}
	conf, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", queue+".parked", true, false, amqp.Publishing{
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
	if ok, err := conf.WaitContext(context.Background()); err != nil || !ok {
		t.Fatalf("parking %s: confirmed %v, %v", id, ok, err)
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

// brokerParkTopology applies a topic exchange bound to q (key order.*) and q with delivery_limit 1,
// a 300ms tier and a parking lot, so a test can make the broker itself park a message.
func brokerParkTopology(t *testing.T, b *testenv.Broker, q, exchange string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`
exchanges:
  - {name: %s, type: topic}
queues:
  - name: %s
    delivery_limit: 1
    retry: {delays: [300ms]}
bindings:
  - {exchange: %[1]s, queue: %[2]s, routing_key: "order.*"}
`, exchange, q)), 0o600); err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	b.Track(exchange, q, q+".retry.300ms", q+".parked")
	if _, err := topology.Apply(context.Background(), b.Conn, topo); err != nil {
		t.Fatal(err)
	}
}

// crashUntilParked takes the head of q and closes the channel without an ack (a consumer that
// died holding it) until the broker dead-letters it into the parking lot.
func crashUntilParked(t *testing.T, b *testenv.Broker, q string) {
	t.Helper()
	ch := b.Channel()
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		consumer := b.Channel()
		if _, _, err := consumer.Get(q, false); err != nil {
			t.Fatalf("get: %v", err)
		}
		consumer.Close()
		n := queueDepth(t, ch, q+".parked")
		return n == 1, fmt.Sprintf("%d messages in %s.parked, want the one the broker dead-lettered", n, q)
	})
}

// A message the broker dead-lettered into the parking lot (its delivery limit reached: every
// consumer that got it died holding it) carries no sw- headers, only the broker's x-death
// record. `dlq list` must say so and where it came from, and `dlq replay` must send it back
// there, without the broker's counters and records. RabbitMQ 4 gives every quorum queue a
// delivery limit (20), so this happens there without any delivery_limit in the file.
func TestDLQHandlesMessagesTheBrokerDeadLettered(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	q, exchange := b.Name("dlqbroker"), b.Name("dlqbroker-events")
	brokerParkTopology(t, b, q, exchange)
	ch := b.Channel()
	env := map[string]string{"SYNCWORKER_AMQP_URL": b.URL}

	// Never handled by a subscriber: published to the exchange, crashed its consumers.
	if err := ch.PublishWithContext(context.Background(), exchange, "order.created", true, false, amqp.Publishing{
		MessageId: "crasher", Type: "order.created", Headers: amqp.Table{"sw-partition-key": "k1"}, Body: []byte(`{"n":1}`),
	}); err != nil {
		t.Fatal(err)
	}
	crashUntilParked(t, b, q)
	code, out, errOut := runCLI(t, env, "", "dlq", "list", "--queue", q)
	if code != 0 {
		t.Fatalf("list exited %d: %s", code, errOut)
	}
	row := lineWith(out, "crasher")
	for _, want := range []string{exchange, "order.created", "delivery_limit", "dead-lettered by the broker from " + q} {
		if !strings.Contains(row, want) {
			t.Errorf("list row lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(row, "(default)") {
		t.Errorf("list names the default exchange as the origin of a message published to %s:\n%s", exchange, out)
	}
	if _, out, _ = runCLI(t, env, "", "dlq", "list", "--queue", q, "--reason-contains", "delivery_limit"); !strings.Contains(out, "crasher") {
		t.Errorf("--reason-contains delivery_limit does not select it:\n%s", out)
	}

	code, out, errOut = runCLI(t, env, "", "dlq", "replay", "--queue", q)
	if code != 0 || !strings.Contains(out, "1 replayed") {
		t.Fatalf("replay: code %d, out %q, err %q", code, out, errOut)
	}
	var d amqp.Delivery
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		var ok bool
		var err error
		d, ok, err = ch.Get(q, true)
		return ok && err == nil, fmt.Sprintf("replayed message not in %s (err %v)", q, err)
	})
	if d.MessageId != "crasher" || d.Exchange != exchange || d.RoutingKey != "order.created" || string(d.Body) != `{"n":1}` ||
		d.Headers["sw-partition-key"] != "k1" {
		t.Errorf("replayed as id %q via exchange %q key %q body %s headers %v", d.MessageId, d.Exchange, d.RoutingKey, d.Body, d.Headers)
	}
	for _, h := range []string{"x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
		"x-last-death-exchange", "x-last-death-queue", "x-last-death-reason"} {
		if _, ok := d.Headers[h]; ok {
			t.Errorf("replayed message still carries the broker's %s: %v", h, d.Headers)
		}
	}
	// A first delivery has no count (RabbitMQ 4) or 0 (3.x), unless the publisher sent one.
	for _, h := range []string{"x-delivery-count", "x-acquired-count"} {
		if n, ok := d.Headers[h]; ok && n != int64(0) {
			t.Errorf("replayed message arrives with the parking lot's %s = %v", h, n)
		}
	}

	// Failed once in a subscriber (moved to the tier with sw- headers), came back, then crashed
	// its consumers: the broker's dead-lettering is the latest news, not the old handler error.
	if err := ch.PublishWithContext(context.Background(), "", q+".retry.300ms", true, false, amqp.Publishing{
		MessageId: "retried-crasher", Body: []byte("{}"), Headers: amqp.Table{
			subscriber.HeaderAttempts: int64(1), subscriber.HeaderError: "old handler error",
			subscriber.HeaderFailedAt: time.Now().UTC().Format(time.RFC3339Nano), subscriber.HeaderConsumer: "billing",
			subscriber.HeaderOriginalExchange: exchange, subscriber.HeaderOriginalRoutingKey: "order.updated",
		},
	}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		n := queueDepth(t, ch, q)
		return n == 1, fmt.Sprintf("%d in %s, want the message back from its tier", n, q)
	})
	crashUntilParked(t, b, q)
	_, out, _ = runCLI(t, env, "", "dlq", "list", "--queue", q)
	row = lineWith(out, "retried-crasher")
	for _, want := range []string{exchange, "order.updated", "delivery_limit", "old handler error"} {
		if !strings.Contains(row, want) {
			t.Errorf("list row lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = runCLI(t, env, "", "dlq", "replay", "--queue", q)
	if code != 0 || !strings.Contains(out, "1 replayed") {
		t.Fatalf("replay: code %d, out %q, err %q", code, out, errOut)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		var ok bool
		var err error
		d, ok, err = ch.Get(q, true)
		return ok && err == nil, fmt.Sprintf("replayed message not in %s (err %v)", q, err)
	})
	if d.MessageId != "retried-crasher" || d.Exchange != exchange || d.RoutingKey != "order.updated" {
		t.Errorf("replayed as id %q via exchange %q key %q", d.MessageId, d.Exchange, d.RoutingKey)
	}
}

// lineWith returns the first line of s that contains sub ("" when none does).
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// The subscriber parked it after the broker's latest record of the queue (a record an older
// syncworker kept through a replay): the handler's error is the reason, not the old dead-lettering.
func TestDescribeParkedPrefersTheLaterEvent(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	death := amqp.Table{"queue": "q", "reason": "delivery_limit", "exchange": "events", "routing-keys": []any{"order.created"}, "time": at}
	d := amqp.Delivery{Headers: amqp.Table{"x-death": []any{death},
		subscriber.HeaderError: "boom", subscriber.HeaderFailedAt: at.Add(time.Minute).Format(time.RFC3339Nano)}}
	if p := describe(&d, "q"); p.reason != "boom" || !p.known || p.exchange != "events" || p.routingKey != "order.created" {
		t.Errorf("parked by the subscriber after an old dead-lettering: %+v", p)
	}
	d.Headers[subscriber.HeaderFailedAt] = at.Add(-time.Minute).Format(time.RFC3339Nano)
	if p := describe(&d, "q"); p.reason != "dead-lettered by the broker from q: delivery_limit; last handler error: boom" ||
		p.failedAt != "2026-12-01T10:00:00Z" {
		t.Errorf("dead-lettered by the broker after a handler failure: %+v", p)
	}
	if p := describe(&d, "other"); p.reason != "boom" || p.known {
		t.Errorf("a record of another queue: %+v", p)
	}
}

// dlq list hands the messages it showed back to the parking lot. A parking lot declared before
// lots carried their own x-delivery-limit has RabbitMQ 4's default of 20 and no dead-letter
// target: if handing back counted as a delivery, the 21st list would drop the message for good.
func TestDLQListDoesNotUseUpTheLotsDeliveryLimit(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	q := b.Name("dlqoldlot")
	lot := q + ".parked"
	b.Track(lot)
	ch := b.Channel()
	if _, err := ch.QueueDeclare(lot, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	park(t, ch, q, "m1", "order.created", "boom", []byte("{}"))
	env := map[string]string{"SYNCWORKER_AMQP_URL": b.URL}
	for i := 1; i <= 25; i++ {
		code, out, errOut := runCLI(t, env, "", "dlq", "list", "--queue", q)
		if code != 0 || !strings.Contains(out, "m1") {
			t.Fatalf("list %d: code %d, the message is gone (%s):\n%s", i, code, errOut, out)
		}
	}
}
