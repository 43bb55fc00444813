package topology

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

	amqp "github.com/rabbitmq/amqp091-go"
)

// AMQP cannot list an entity's arguments. What the broker can do is refuse a declaration
// whose arguments differ from the existing entity's (406 PRECONDITION_FAILED, naming one
// argument with the received and current values), and a declaration identical to an
// existing entity changes nothing. So for an entity that a passive declare shows to exist,
// probe declares it actively with the file's settings; on 406 it records the difference,
// adopts the broker's value and declares again, until the declaration matches: every
// difference is found and the broker is left as it was. Each declaration uses a channel
// of its own because an error closes the channel.

// observation is what the broker has of one exchange or queue.
type observation struct {
	exists      bool
	messages    int
	consumers   int
	differences []*ConflictError
}

// onChannel runs f on a fresh channel and closes it.
func onChannel(conn *amqp.Connection, f func(*amqp.Channel) error) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close() //nolint:errcheck // the broker may have closed it already
	return f(ch)
}

func amqpCode(err error) int {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

func observeExchange(conn *amqp.Connection, d exchangeDecl) (observation, error) {
	err := onChannel(conn, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclarePassive(d.name, d.kind, d.durable, d.autoDelete, d.internal, false, nil)
	})
	switch {
	case amqpCode(err) == amqp.NotFound:
		return observation{}, nil
	case err != nil:
		return observation{}, fmt.Errorf("check exchange %q: %w", d.name, err)
	}
	p := &probe{kind: "exchange", name: d.name, line: d.line, xtype: d.kind, args: copyTable(d.args),
		flags: map[string]bool{"durable": d.durable, "auto_delete": d.autoDelete, "internal": d.internal}}
	diffs, err := p.differences(conn, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare(p.name, p.xtype, p.flags["durable"], p.flags["auto_delete"], p.flags["internal"], false, p.args)
	})
	return observation{exists: true, differences: diffs}, err
}

func observeQueue(conn *amqp.Connection, d queueDecl) (observation, error) {
	var state amqp.Queue
	err := onChannel(conn, func(ch *amqp.Channel) (err error) {
		state, err = ch.QueueDeclarePassive(d.name, d.durable, d.autoDelete, d.exclusive, false, nil)
		return err
	})
	switch {
	case amqpCode(err) == amqp.NotFound:
		return observation{}, nil
	case amqpCode(err) == amqp.ResourceLocked:
		return observation{exists: true, differences: []*ConflictError{lockedConflict(d)}}, nil
	case err != nil:
		return observation{}, fmt.Errorf("check queue %q: %w", d.name, err)
	}
	p := &probe{kind: "queue", name: d.name, line: d.line, args: copyTable(d.args),
		flags: map[string]bool{"durable": d.durable, "auto_delete": d.autoDelete, "exclusive": d.exclusive}}
	diffs, err := p.differences(conn, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(p.name, p.flags["durable"], p.flags["auto_delete"], p.flags["exclusive"], false, p.args)
		return err
	})
	return observation{exists: true, messages: state.Messages, consumers: state.Consumers, differences: diffs}, err
}

// lockedConflict describes 405 RESOURCE_LOCKED: the queue is exclusive to another
// connection, or its exclusive flag differs from the file's.
func lockedConflict(d queueDecl) *ConflictError {
	return &ConflictError{Kind: "queue", Entity: d.name, Argument: "exclusive", Line: d.line,
		Broker: "locked (exclusive to another connection, or declared with another exclusive flag)",
		File:   strconv.FormatBool(d.exclusive)}
}

// probe is a declaration being matched against an existing entity.
type probe struct {
	kind, name string
	line       int
	xtype      string          // exchanges only
	flags      map[string]bool // durable, auto_delete, internal | exclusive
	args       amqp.Table
}

// maxProbes bounds the declare-adopt loop; each round fixes one argument.
const maxProbes = 24

func (p *probe) differences(conn *amqp.Connection, declare func(*amqp.Channel) error) ([]*ConflictError, error) {
	var diffs []*ConflictError
	for range maxProbes {
		err := onChannel(conn, declare)
		switch code := amqpCode(err); {
		case err == nil:
			return diffs, nil
		case code == amqp.ResourceLocked:
			return append(diffs, lockedConflict(queueDecl{name: p.name, exclusive: p.flags["exclusive"], line: p.line})), nil
		case code != amqp.PreconditionFailed:
			return diffs, fmt.Errorf("check %s %q: %w", p.kind, p.name, err)
		}
		var ae *amqp.Error
		errors.As(err, &ae)
		in, ok := parseInequivalent(ae.Reason)
		if !ok {
			// A refusal we cannot take apart: report it whole and stop looking.
			return append(diffs, &ConflictError{Kind: p.kind, Entity: p.name, Line: p.line, Argument: "(declaration)", Broker: ae.Reason, File: "as written"}), nil
		}
		c := &ConflictError{Kind: p.kind, Entity: p.name, Line: p.line,
			Argument: in.arg, Broker: in.current.display(), File: in.received.display()}
		if in.arg == "x-queue-type" && in.current.none {
			c.Broker = "(not set, so classic)"
		}
		diffs = append(diffs, c)
		if !p.adopt(in) {
			return diffs, nil
		}
	}
	return diffs, nil
}

// adopt changes the probe to the broker's value of one argument; false when it cannot.
func (p *probe) adopt(in inequivalent) bool {
	if _, ok := p.flags[in.arg]; ok {
		b, err := strconv.ParseBool(in.current.text)
		if err != nil || in.current.none || b == p.flags[in.arg] {
			return false
		}
		p.flags[in.arg] = b
		return true
	}
	if in.arg == "type" && p.kind == "exchange" {
		if in.current.none || in.current.text == p.xtype {
			return false
		}
		p.xtype = in.current.text
		return true
	}
	if in.current.none {
		if _, had := p.args[in.arg]; !had {
			return false
		}
		delete(p.args, in.arg)
		return true
	}
	typ := in.current.typ
	if typ == "" { // "received 'a' but current is 'b'": the broker's type class is ours
		switch p.args[in.arg].(type) {
		case string:
			typ = "longstr"
		case bool:
			typ = "bool"
		case int64:
			typ = "long"
		}
	}
	v, ok := tableValue(typ, in.current.text)
	if !ok || p.args[in.arg] == v {
		return false
	}
	p.args[in.arg] = v
	return true
}

// tableValue turns the broker's printed value back into a field-table value.
func tableValue(typ, text string) (any, bool) {
	switch typ {
	case "longstr":
		return text, true
	case "bool":
		b, err := strconv.ParseBool(text)
		return b, err == nil
	case "long", "signedint", "short", "byte", "unsignedbyte", "unsignedshort", "unsignedint":
		i, err := strconv.ParseInt(text, 10, 64)
		return i, err == nil
	}
	return nil, false
}

// inequivalent is a parsed "inequivalent arg" refusal.
type inequivalent struct {
	arg               string
	received, current brokerValue
}

// brokerValue is one side of the refusal: none, 'text', or the value 'text' of type 'typ'.
type brokerValue struct {
	none      bool
	text, typ string
}

// notSet is how a ConflictError shows an argument one side does not have.
const notSet = "(not set)"

func (v brokerValue) display() string {
	switch {
	case v.none:
		return notSet
	case v.text == "":
		return `""`
	}
	return v.text
}

var (
	inequivalentRE = regexp.MustCompile(`^PRECONDITION_FAILED - inequivalent arg '([^']+)' for (?:queue|exchange) '.*' in vhost '.*': received (.+) but current is (.+)$`)
	typedValueRE   = regexp.MustCompile(`^the value '(.*)' of type '([a-z]+)'$`)
	plainValueRE   = regexp.MustCompile(`^'(.*)'$`)
)

// parseInequivalent reads RabbitMQ's refusal, for example
//
//	PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/':
//	received '2000' but current is '1000'
func parseInequivalent(reason string) (inequivalent, bool) {
	m := inequivalentRE.FindStringSubmatch(reason)
	if m == nil {
		return inequivalent{}, false
	}
	received, ok1 := parseBrokerValue(m[2])
	current, ok2 := parseBrokerValue(m[3])
	return inequivalent{arg: m[1], received: received, current: current}, ok1 && ok2
}

func parseBrokerValue(s string) (brokerValue, bool) {
	if s == "none" {
		return brokerValue{none: true}, true
	}
	if m := typedValueRE.FindStringSubmatch(s); m != nil {
		return brokerValue{text: m[1], typ: m[2]}, true
	}
	if m := plainValueRE.FindStringSubmatch(s); m != nil {
		return brokerValue{text: m[1]}, true
	}
	return brokerValue{}, false
}

func copyTable(t amqp.Table) amqp.Table {
	c := make(amqp.Table, len(t))
	for k, v := range t {
		c[k] = v
	}
	return c
}
