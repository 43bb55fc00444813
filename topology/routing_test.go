package topology

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/testenv"
)

const routingFile = `
exchanges:
  - {name: fan, type: fanout}
  - {name: events, type: topic, alternate_exchange: unrouted}
  - {name: unrouted, type: fanout}
  - {name: commands, type: direct}
  - {name: docs, type: headers}
  - {name: audit, type: fanout, internal: true}
queues:
  - {name: fan.a, type: classic}
  - {name: fan.b}
  - {name: one-word, type: classic}
  - {name: any-words}
  - {name: unrouted, type: classic}
  - {name: invoices, type: classic}
  - {name: docs.all, type: classic}
  - {name: docs.any, type: classic}
  - {name: docs.x, type: classic}
  - {name: audit, type: classic}
bindings:
  - {exchange: fan, queue: fan.a}
  - {exchange: fan, queue: fan.b}
  - {exchange: events, queue: one-word, routing_key: "order.*"}
  - {exchange: events, queue: any-words, routing_key: "order.#"}
  - {exchange: unrouted, queue: unrouted}
  - {exchange: commands, queue: invoices, routing_key: invoice.create}
  - {exchange: docs, queue: docs.all, match: all, headers: {format: pdf, type: report}}
  - {exchange: docs, queue: docs.any, match: any, headers: {format: pdf, priority: 1}}
  - {exchange: docs, queue: docs.x, match: any-with-x, headers: {x-tenant: acme}}
  - {exchange: events, to_exchange: audit, routing_key: "audit.#"}
  - {exchange: audit, queue: audit}
`

// TestRouting checks that each exchange kind routes as documented in the README, from a
// topology that Apply declared.
func TestRouting(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	top := parseFor(t, b, routingFile)
	apply(t, b, top)
	n := func(s string) string { return b.Prefix + s }

	pub := newPublisher(t, b)
	want := map[string][]string{} // queue -> message ids
	send := func(exchange, key, id string, headers amqp.Table, to ...string) {
		pub.publish(n(exchange), key, id, headers)
		for _, q := range to {
			want[n(q)] = append(want[n(q)], id)
		}
	}
	send("fan", "ignored", "fanout", nil, "fan.a", "fan.b")
	send("events", "order.created", "topic-one-word", nil, "one-word", "any-words")
	send("events", "order.line.added", "topic-two-words", nil, "any-words")
	send("events", "order", "topic-no-word", nil, "any-words")
	send("events", "invoice.created", "topic-unmatched", nil, "unrouted")
	send("events", "audit.login", "exchange-to-exchange", nil, "audit")
	send("commands", "invoice.create", "direct-exact", nil, "invoices")
	send("commands", "invoice.created", "direct-other", nil)
	send("docs", "", "headers-both", amqp.Table{"format": "pdf", "type": "report"}, "docs.all", "docs.any")
	send("docs", "", "headers-format", amqp.Table{"format": "pdf"}, "docs.any")
	send("docs", "", "headers-int", amqp.Table{"priority": int32(1)}, "docs.any")
	send("docs", "", "headers-type", amqp.Table{"type": "report"})
	send("docs", "", "headers-x", amqp.Table{"x-tenant": "acme"}, "docs.x")

	ch := b.Channel()
	for _, q := range top.Queues {
		got := []string{}
		expected := slices.Clone(want[q.Name])
		sort.Strings(expected)
		// Confirmed messages are enqueued; poll only because a quorum queue's count can trail.
		testenv.Eventually(t, 5*time.Second, func() (bool, string) {
			for {
				d, ok := get(t, ch, q.Name)
				if !ok {
					break
				}
				got = append(got, d.MessageId)
			}
			sort.Strings(got)
			return len(got) >= len(expected), fmt.Sprintf("%s got %v, want %v", q.Name, got, expected)
		})
		if !slices.Equal(got, expected) {
			t.Errorf("queue %s got %v, want %v", q.Name, got, expected)
		}
	}
}
