package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/internal/naming"
	"github.com/syncworker/syncworker/subscriber"
)

func init() {
	register(&command{name: "dlq list", summary: "show a queue's parked messages and why they failed (they stay parked)", run: runDLQList})
	register(&command{name: "dlq replay", summary: "move parked messages back to their original exchange and routing key", run: runDLQReplay})
	register(&command{name: "dlq purge", summary: "delete parked messages for good", run: runDLQPurge})
}

// failureHeaders are the headers the subscriber adds when a message fails, and brokerHeaders
// those the broker adds when it dead-letters (x-death and its summaries) or redelivers a message
// (RabbitMQ 4's counts). Replay drops both, so a replayed message is the one originally
// published and starts its attempts afresh, and a later parking is not mistaken for an old one.
var (
	failureHeaders = []string{subscriber.HeaderAttempts, subscriber.HeaderError, subscriber.HeaderFailedAt,
		subscriber.HeaderConsumer, subscriber.HeaderOriginalExchange, subscriber.HeaderOriginalRoutingKey}
	brokerHeaders = []string{"x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
		"x-last-death-exchange", "x-last-death-queue", "x-last-death-reason", "x-delivery-count", "x-acquired-count"}
)

// dlqFilter selects parked messages; empty fields match everything.
type dlqFilter struct {
	messageID, typ, reason string
}

func (f dlqFilter) match(d *amqp.Delivery, p parkedMessage) bool {
	return (f.messageID == "" || d.MessageId == f.messageID) &&
		(f.typ == "" || d.Type == f.typ) &&
		(f.reason == "" || strings.Contains(p.reason, f.reason))
}

func (f dlqFilter) empty() bool { return f == dlqFilter{} }

// dlqCommand holds what every dlq subcommand parses.
type dlqCommand struct {
	s      *settings
	lot    string
	limit  int
	filter dlqFilter
	parked int  // messages in the parking lot when opened
	nack   bool // hand messages back with a nack (amqpx.RequeueByNack)
}

func parseDLQ(env *cliEnv, name, synopsis string, args []string, extra func(fs *flag.FlagSet), defaultLimit int) (*dlqCommand, *cliEnv, error) {
	fs := newFlagSet(env, name, synopsis)
	need := needs{amqp: true}
	b := bindSettings(fs, need)
	b.str("queue", "consumer queue whose parking lot (QUEUE.parked) to work on (consume.queue, env SYNCWORKER_CONSUME_QUEUE)", func(s *settings) *string { return &s.Consume.Queue })
	c := &dlqCommand{}
	fs.IntVar(&c.limit, "limit", defaultLimit, "most messages to act on (0: all)")
	fs.StringVar(&c.filter.messageID, "message-id", "", "only the message with this id")
	fs.StringVar(&c.filter.typ, "type", "", "only messages of this type (AMQP type property)")
	fs.StringVar(&c.filter.reason, "reason-contains", "", "only messages whose failure reason (the REASON dlq list shows) contains this text")
	if extra != nil {
		extra(fs)
	}
	s, env, err := b.parse(env, args, need)
	if err != nil {
		return nil, nil, err
	}
	if s.Consume.Queue == "" {
		return nil, nil, usageErrorf("--queue (or consume.queue) is required: the parking lot is QUEUE.parked")
	}
	if c.limit < 0 {
		return nil, nil, usageErrorf("--limit %d is negative; allowed: a positive number, or 0 for all", c.limit)
	}
	c.s, c.lot = s, naming.ParkingLot(s.Consume.Queue)
	return c, env, nil
}

// scan takes the parking lot's messages one by one with basic.get and manual ack, calling
// visit for each that matches the filter until limit matched or the queue is empty. Nothing
// is acked unless visit does it: handBack requeues the rest.
func (c *dlqCommand) scan(ch *amqp.Channel, visit func(d *amqp.Delivery, p parkedMessage) error) (matched int, err error) {
	for c.limit == 0 || matched < c.limit {
		d, ok, err := ch.Get(c.lot, false)
		if err != nil {
			return matched, fmt.Errorf("get from %s: %w", c.lot, err)
		}
		if !ok {
			return matched, nil
		}
		p := describe(&d, c.s.Consume.Queue)
		if !c.filter.match(&d, p) {
			continue
		}
		matched++
		if err := visit(&d, p); err != nil {
			return matched, err
		}
	}
	return matched, nil
}

// handBack returns every message taken on ch and not acked to the parking lot, then closes ch.
// Where amqpx.RequeueByNack holds (RabbitMQ 4.3+) it nacks them with requeue first: that does not
// count against the lot's delivery limit, while a channel closing with them unacked does. A lot
// declared without its own x-delivery-limit has RabbitMQ 4's default of 20 and no dead-letter
// target, so counting lists would drop its messages at the 21st. On 3.x a nack counts too and
// moves the messages to the back of the lot, so the close alone hands them back. If the nack
// fails, the close requeues them all the same.
func (c *dlqCommand) handBack(ch *amqp.Channel) {
	if c.nack {
		_ = ch.Nack(0, true, true) // delivery tag 0 with multiple: every unacked message of ch
	}
	ch.Close()
}

// open connects and checks the parking lot exists, noting how many messages it holds.
func (c *dlqCommand) open(name string) (*amqp.Connection, *amqp.Channel, error) {
	conn, err := dialAMQP(c.s, "syncworker "+name)
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	st, err := ch.QueueDeclarePassive(c.lot, false, false, false, false, nil)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("parking lot %s: %w", c.lot, err)
	}
	c.parked = st.Messages
	c.nack = amqpx.RequeueByNack(conn.Properties)
	return conn, ch, nil
}

func runDLQList(ctx context.Context, env *cliEnv, args []string) error {
	c, env, err := parseDLQ(env, "dlq list", "--queue QUEUE [--limit N] [filters]", args, nil, 100)
	if err != nil {
		return err
	}
	conn, ch, err := c.open("dlq list")
	if err != nil {
		return redactErr(err, c.s)
	}
	defer conn.Close()
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MESSAGE ID\tTYPE\tATTEMPTS\tFAILED AT\tCONSUMER\tORIGINAL EXCHANGE\tORIGINAL ROUTING KEY\tREASON")
	n, err := c.scan(ch, func(d *amqp.Delivery, p parkedMessage) error {
		exchange := p.exchange
		if p.known && exchange == "" {
			exchange = "(default)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.MessageId, d.Type, p.attempts,
			p.failedAt, p.consumer, exchange, p.routingKey, oneLine(p.reason))
		return nil
	})
	c.handBack(ch) // requeues everything taken: list never consumes for good
	if err != nil {
		return redactErr(err, c.s)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "%d parked message(s) listed from %s; all are still parked\n", n, c.lot)
	return nil
}

func runDLQReplay(ctx context.Context, env *cliEnv, args []string) error {
	c, env, err := parseDLQ(env, "dlq replay", "--queue QUEUE [--limit N] [filters]", args, nil, 0)
	if err != nil {
		return err
	}
	conn, ch, err := c.open("dlq replay")
	if err != nil {
		return redactErr(err, c.s)
	}
	defer conn.Close()
	pub, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := pub.Confirm(false); err != nil {
		return fmt.Errorf("confirm mode: %w", err)
	}
	returns := pub.NotifyReturn(make(chan amqp.Return, 1))
	closed := pub.NotifyClose(make(chan *amqp.Error, 1))
	replayed, lastProgress := 0, time.Now()
	_, err = c.scan(ch, func(d *amqp.Delivery, p parkedMessage) error {
		if !p.known {
			return fmt.Errorf("message %s: no sw-original-exchange/sw-original-routing-key headers and no x-death record of %s: "+
				"parked by neither syncworker nor the broker (it stays parked)", d.MessageId, c.s.Consume.Queue)
		}
		if err := replayOne(ctx, pub, returns, closed, d, p.exchange, p.routingKey); err != nil {
			return fmt.Errorf("message %s: %w (it stays parked)", d.MessageId, err)
		}
		if err := d.Ack(false); err != nil {
			return fmt.Errorf("message %s was replayed but its ack failed, so it is also still parked: %w", d.MessageId, err)
		}
		replayed++
		if time.Since(lastProgress) >= time.Second {
			fmt.Fprintf(env.stderr, "replayed %d (the parking lot held %d)\n", replayed, c.parked)
			lastProgress = time.Now()
		}
		return nil
	})
	c.handBack(ch)
	fmt.Fprintf(env.stderr, "replayed %d message(s) from %s\n", replayed, c.lot)
	fmt.Fprintf(env.stdout, "%d replayed\n", replayed)
	return redactErr(err, c.s)
}

// replayOne publishes d to its original exchange and routing key, mandatory and confirmed;
// a return, a nack or the broker closing the channel (an exchange that does not exist) is a
// failure.
func replayOne(ctx context.Context, pub *amqp.Channel, returns <-chan amqp.Return, closed <-chan *amqp.Error, d *amqp.Delivery, exchange, key string) error {
	headers := amqp.Table{}
	for k, v := range d.Headers {
		headers[k] = v
	}
	for _, h := range failureHeaders {
		delete(headers, h)
	}
	for _, h := range brokerHeaders {
		delete(headers, h)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conf, err := pub.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, amqp.Publishing{
		Headers: headers, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding, DeliveryMode: amqp.Persistent,
		Priority: d.Priority, CorrelationId: d.CorrelationId, ReplyTo: d.ReplyTo, Expiration: d.Expiration,
		MessageId: d.MessageId, Timestamp: d.Timestamp, Type: d.Type, UserId: d.UserId, AppId: d.AppId, Body: d.Body,
	})
	if err != nil {
		return fmt.Errorf("publish to exchange %q key %q: %w", exchange, key, err)
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("wait for confirm: %w", err)
	}
	// A channel the broker closed (404 for a missing exchange) settles the confirm as a nack
	// and closes the returns channel too, so look at why it closed first. The library sends
	// the close reason before it settles the confirms.
	select {
	case e, open := <-closed:
		if open && e != nil && e.Code == amqp.NotFound {
			return fmt.Errorf("exchange %q does not exist (%d %s)", exchange, e.Code, e.Reason)
		}
		if open && e != nil {
			return fmt.Errorf("publish to exchange %q: the broker closed the channel: %w", exchange, e)
		}
		return fmt.Errorf("publish to exchange %q: the channel closed", exchange)
	default:
	}
	// The broker sends basic.return before the ack of an unroutable mandatory message.
	select {
	case r, open := <-returns:
		if open {
			return fmt.Errorf("exchange %q returned it with key %q (%d %s): no queue is bound", exchange, key, r.ReplyCode, r.ReplyText)
		}
	default:
	}
	if !ok {
		return fmt.Errorf("the broker nacked the publish to exchange %q", exchange)
	}
	return nil
}

func runDLQPurge(ctx context.Context, env *cliEnv, args []string) error {
	var yes bool
	c, env, err := parseDLQ(env, "dlq purge", "--queue QUEUE [--limit N] [filters] [--yes]", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	}, 0)
	if err != nil {
		return err
	}
	conn, ch, err := c.open("dlq purge")
	if err != nil {
		return redactErr(err, c.s)
	}
	defer conn.Close()
	if !yes {
		what := fmt.Sprintf("all %d messages", c.parked)
		if c.limit > 0 || !c.filter.empty() {
			what = "the matching messages"
			if c.limit > 0 {
				what = fmt.Sprintf("up to %d matching messages", c.limit)
			}
		}
		fmt.Fprintf(env.stdout, "Delete %s of %s for good? Type 'yes' to confirm: ", what, c.lot)
		answer, _ := bufio.NewReader(env.stdin).ReadString('\n')
		if strings.TrimSpace(answer) != "yes" {
			return fmt.Errorf("not confirmed; nothing deleted")
		}
	}
	var n int
	if c.limit == 0 && c.filter.empty() {
		n, err = ch.QueuePurge(c.lot, false)
	} else {
		n, err = c.scan(ch, func(d *amqp.Delivery, _ parkedMessage) error { return d.Ack(false) })
		c.handBack(ch)
	}
	if err != nil {
		return redactErr(err, c.s)
	}
	fmt.Fprintf(env.stdout, "%d parked messages purged from %s\n", n, c.lot)
	return nil
}

// headerString renders a header value for display ("" when absent).
func headerString(h amqp.Table, key string) string {
	v, ok := h[key]
	if !ok || v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
