package topology

import (
	"fmt"
	"sort"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The declarations a topology expands to: what is sent to the broker, derived entities
// (retry tiers, parking lots) included.

type exchangeDecl struct {
	name       string
	kind       string
	durable    bool
	autoDelete bool
	internal   bool
	args       amqp.Table
	line       int
}

type queueDecl struct {
	name       string
	durable    bool
	autoDelete bool
	exclusive  bool
	args       amqp.Table
	origin     string // "" for a queue of the file, else for example "retry tier of orders"
	parkingLot bool
	line       int
}

type bindingDecl struct {
	source     string
	dest       string
	toExchange bool
	key        string
	args       amqp.Table
	line       int
}

func (b bindingDecl) String() string {
	s := fmt.Sprintf("%s -> %s", b.source, b.dest)
	if b.toExchange {
		s = fmt.Sprintf("%s -> exchange %s", b.source, b.dest)
	}
	if b.key != "" {
		s += fmt.Sprintf(" [%s]", b.key)
	}
	if len(b.args) > 0 {
		s += " " + formatTable(b.args)
	}
	return s
}

type declarations struct {
	exchanges []exchangeDecl
	queues    []queueDecl
	bindings  []bindingDecl
}

// declarations expands a valid topology. Parking lots and tiers come before their queue so
// that the dead-letter targets exist first.
func (t *Topology) declarations() declarations {
	var d declarations
	for _, x := range t.Exchanges {
		args := amqp.Table{}
		if x.AlternateExchange != "" {
			args["alternate-exchange"] = x.AlternateExchange
		}
		d.exchanges = append(d.exchanges, exchangeDecl{
			name: x.Name, kind: string(x.Type), durable: x.durable(), autoDelete: x.AutoDelete,
			internal: x.Internal, args: args, line: x.pos.line,
		})
	}
	for _, q := range t.Queues {
		if pl := q.ParkingLot(); pl != "" {
			d.queues = append(d.queues, queueDecl{
				name: pl, durable: true, args: parkingLotArgs(), parkingLot: true,
				origin: "parking lot of " + q.Name, line: q.pos.at("retry"),
			})
		}
		for _, tier := range q.RetryTiers() {
			d.queues = append(d.queues, queueDecl{
				name: tier.Queue, durable: true, args: tierArgs(q.Name, tier),
				origin: "retry tier of " + q.Name, line: q.pos.at("retry"),
			})
		}
		d.queues = append(d.queues, queueDecl{
			name: q.Name, durable: q.durable(), autoDelete: q.AutoDelete, exclusive: q.Exclusive,
			args: queueArgs(q), line: q.pos.line,
		})
	}
	for _, b := range t.Bindings {
		bd := bindingDecl{source: b.Exchange, dest: b.Queue, key: b.RoutingKey, args: bindingArgs(b), line: b.pos.line}
		if b.ToExchange != "" {
			bd.dest, bd.toExchange = b.ToExchange, true
		}
		d.bindings = append(d.bindings, bd)
	}
	return d
}

// tierArgs makes a delay tier: messages wait Delay, then dead-letter back to the queue
// through the default exchange. Tiers are quorum queues with at-least-once dead-lettering
// (which RabbitMQ allows only with overflow reject-publish), so a message is removed from
// the tier only once the queue has it: the broker-side hop back is not at-most-once.
func tierArgs(queue string, tier RetryTier) amqp.Table {
	return amqp.Table{
		"x-queue-type":              string(Quorum),
		"x-message-ttl":             tier.Delay.Milliseconds(),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": queue,
		"x-dead-letter-strategy":    "at-least-once",
		"x-overflow":                string(RejectPublish),
	}
}

// parkingLotDeliveryLimit is set on every parking lot so that no broker default applies:
// RabbitMQ 4 gives quorum queues a delivery limit of 20, and a message that `dlq list` or
// `dlq replay` took is returned to the lot, which counts as a delivery when it is returned by a
// channel closing (a nack with requeue does not on 4.3, which dlq uses, but a lost connection
// does); a parking lot has no dead-letter target, so a message over the limit would be dropped.
// A billion returns is out of reach.
const parkingLotDeliveryLimit = 1_000_000_000

func parkingLotArgs() amqp.Table {
	return amqp.Table{"x-queue-type": string(Quorum), "x-delivery-limit": parkingLotDeliveryLimit}
}

// queueArgs makes the arguments of a queue of the file. With a parking lot, messages the
// broker dead-letters (delivery limit reached, or rejected without requeue) go to it.
func queueArgs(q Queue) amqp.Table {
	args := amqp.Table{"x-queue-type": string(q.queueType())}
	if q.MaxLength > 0 {
		args["x-max-length"] = q.MaxLength
	}
	if q.MaxLengthBytes > 0 {
		args["x-max-length-bytes"] = q.MaxLengthBytes
	}
	if q.Overflow != "" {
		args["x-overflow"] = string(q.Overflow)
	}
	if q.MessageTTL > 0 {
		args["x-message-ttl"] = q.MessageTTL.Milliseconds()
	}
	if q.SingleActiveConsumer {
		args["x-single-active-consumer"] = true
	}
	if q.DeliveryLimit > 0 {
		args["x-delivery-limit"] = q.DeliveryLimit
	}
	if pl := q.ParkingLot(); pl != "" {
		args["x-dead-letter-exchange"] = ""
		args["x-dead-letter-routing-key"] = pl
	}
	return args
}

// bindingArgs makes the arguments of a headers binding; nil for other kinds.
func bindingArgs(b Binding) amqp.Table {
	if len(b.Headers) == 0 && b.Match == "" {
		return nil
	}
	args := amqp.Table{"x-match": string(b.match())}
	for k, v := range b.Headers {
		switch n := v.(type) {
		case int:
			v = int64(n)
		case int32:
			v = int64(n)
		}
		args[k] = v
	}
	return args
}

// formatTable writes a table with sorted keys: {x-match=all, format=pdf}.
func formatTable(t amqp.Table) string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, t[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
