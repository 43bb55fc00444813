package topology

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/syncworker/syncworker/internal/naming"
)

// maxTTL is the largest x-message-ttl RabbitMQ accepts (2^32-1 ms, about 49 days).
const maxTTL = (1<<32 - 1) * time.Millisecond

// predeclared are the exchanges every RabbitMQ virtual host has; bindings may use them
// without declaring them.
var predeclared = map[string]ExchangeType{
	"amq.direct":  Direct,
	"amq.fanout":  Fanout,
	"amq.topic":   Topic,
	"amq.headers": Headers,
	"amq.match":   Headers,
}

// Validate checks the whole topology without a broker and returns every problem at once:
// *ValidationError values joined with errors.Join (errors.Is(err, ErrInvalid) holds).
func (t *Topology) Validate() error {
	v := &validator{t: t, exchanges: map[string]ExchangeType{}}
	v.exchangesOK()
	v.queuesOK()
	v.bindingsOK()
	if len(v.problems) == 0 {
		return nil
	}
	return sortProblems(errors.Join(v.problems...))
}

type validator struct {
	t         *Topology
	exchanges map[string]ExchangeType // declared in the file
	queues    map[string]bool         // declared in the file, not derived
	problems  []error
}

func (v *validator) problem(line int, entity, format string, args ...any) {
	v.problems = append(v.problems, &ValidationError{File: v.t.file, Line: line, Entity: entity, Problem: fmt.Sprintf(format, args...)})
}

func entityName(kind, list string, i int, name string) string {
	if name == "" {
		return fmt.Sprintf("%s[%d]", list, i)
	}
	return fmt.Sprintf("%s %q", kind, name)
}

// nameProblem says what is wrong with an exchange or queue name, or "".
func nameProblem(name string) string {
	switch {
	case name == "":
		return "name is required"
	case len(name) > 255:
		return fmt.Sprintf("name is %d bytes long; RabbitMQ allows 255", len(name))
	case !utf8.ValidString(name):
		return "name is not valid UTF-8"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "name contains a control character"
	case strings.HasPrefix(name, "amq."):
		return `names starting with "amq." are reserved by the broker`
	}
	return ""
}

func (v *validator) exchangesOK() {
	first := map[string]int{}
	for i, x := range v.t.Exchanges {
		e := entityName("exchange", "exchanges", i, x.Name)
		if p := nameProblem(x.Name); p != "" {
			v.problem(x.pos.at("name"), e, "%s", p)
		} else if l, dup := first[x.Name]; dup {
			v.problem(x.pos.at("name"), e, "declared twice (first at %s)", where(l, v.t.Exchanges[l].pos.line))
		} else {
			first[x.Name] = i
		}
		switch x.Type {
		case Fanout, Topic, Direct, Headers:
		case "":
			v.problem(x.pos.line, e, "type is required: fanout, topic, direct or headers")
		default:
			v.problem(x.pos.at("type"), e, "unknown type %q: use fanout, topic, direct or headers", x.Type)
		}
		if _, dup := v.exchanges[x.Name]; x.Name != "" && !dup {
			v.exchanges[x.Name] = x.Type
		}
	}
	for i, x := range v.t.Exchanges {
		ae := x.AlternateExchange
		if ae == "" {
			continue
		}
		e := entityName("exchange", "exchanges", i, x.Name)
		switch {
		case ae == x.Name:
			v.problem(x.pos.at("alternate_exchange"), e, "alternate_exchange cannot be the exchange itself")
		case !v.knownExchange(ae):
			v.problem(x.pos.at("alternate_exchange"), e, "alternate_exchange %q is not declared in this file", ae)
		}
	}
}

// where describes an earlier entity for "declared twice" messages.
func where(index, line int) string {
	if line > 0 {
		return fmt.Sprintf("line %d", line)
	}
	return fmt.Sprintf("index %d", index)
}

func (v *validator) knownExchange(name string) bool {
	_, inFile := v.exchanges[name]
	_, pre := predeclared[name]
	return inFile || pre
}

func (v *validator) exchangeType(name string) ExchangeType {
	if t, ok := v.exchanges[name]; ok {
		return t
	}
	return predeclared[name]
}

func (v *validator) queuesOK() {
	v.queues = map[string]bool{}
	// Every queue name the topology declares, derived ones included, with who owns it.
	owner := map[string]string{}
	claim := func(name, by string, line int, e string) {
		if prev, dup := owner[name]; dup {
			v.problem(line, e, "queue name %q is declared twice (%s and %s)", name, prev, by)
			return
		}
		owner[name] = by
	}
	for i, q := range v.t.Queues {
		e := entityName("queue", "queues", i, q.Name)
		if p := nameProblem(q.Name); p != "" {
			v.problem(q.pos.at("name"), e, "%s", p)
		} else {
			claim(q.Name, fmt.Sprintf("queue at %s", where(i, q.pos.line)), q.pos.at("name"), e)
			v.queues[q.Name] = true
		}
		v.queueArgsOK(q, e)
		v.retryOK(q, e, claim)
	}
}

func (v *validator) queueArgsOK(q Queue, e string) {
	p := q.pos.at
	switch q.queueType() {
	case Quorum:
		if !q.durable() {
			v.problem(p("durable"), e, "quorum queues are always durable; use type: classic for a transient queue")
		}
		if q.Exclusive {
			v.problem(p("exclusive"), e, "quorum queues cannot be exclusive; use type: classic")
		}
		if q.AutoDelete {
			v.problem(p("auto_delete"), e, "quorum queues cannot be auto-delete; use type: classic")
		}
		if q.Overflow == RejectPublishDLX {
			v.problem(p("overflow"), e, "overflow reject-publish-dlx is for classic queues; quorum queues take drop-head or reject-publish")
		}
	case Classic:
		if q.DeliveryLimit != 0 {
			v.problem(p("delivery_limit"), e, "delivery_limit applies only to quorum queues")
		}
	default:
		v.problem(p("type"), e, "unknown queue type %q: use quorum (the default) or classic", q.Type)
	}
	switch q.Overflow {
	case "", DropHead, RejectPublish, RejectPublishDLX:
	default:
		v.problem(p("overflow"), e, "unknown overflow %q: use drop-head, reject-publish or reject-publish-dlx", q.Overflow)
	}
	if q.Overflow != "" && q.MaxLength == 0 && q.MaxLengthBytes == 0 {
		v.problem(p("overflow"), e, "overflow has no effect without max_length or max_length_bytes")
	}
	if q.MaxLength < 0 {
		v.problem(p("max_length"), e, "max_length must be positive")
	}
	if q.MaxLengthBytes < 0 {
		v.problem(p("max_length_bytes"), e, "max_length_bytes must be positive")
	}
	if q.DeliveryLimit < 0 {
		v.problem(p("delivery_limit"), e, "delivery_limit must be positive")
	}
	if q.MessageTTL != 0 {
		if msg := ttlProblem(q.MessageTTL); msg != "" {
			v.problem(p("message_ttl"), e, "message_ttl %s", msg)
		}
	}
}

// ttlProblem says why d cannot be a message TTL, or "".
func ttlProblem(d time.Duration) string {
	switch {
	case d <= 0:
		return "must be positive"
	case d%time.Millisecond != 0:
		return fmt.Sprintf("%s is not a whole number of milliseconds", d)
	case d > maxTTL:
		return fmt.Sprintf("%s is longer than RabbitMQ's limit of %s", d, maxTTL)
	}
	return ""
}

func (v *validator) retryOK(q Queue, e string, claim func(name, by string, line int, e string)) {
	r := q.Retry
	if r == nil {
		return
	}
	p := r.pos.at
	line := q.pos.at("retry")
	if q.Exclusive || q.AutoDelete || !q.durable() {
		v.problem(line, e, "retry needs a durable queue that is neither exclusive nor auto-delete (its tiers would outlive it)")
	}
	if len(r.Delays) == 0 && q.ParkingLot() == "" {
		v.problem(line, e, "retry has neither delays nor a parking lot")
	}
	for i, d := range r.Delays {
		if msg := ttlProblem(d); msg != "" {
			v.problem(p("delays"), e, "retry delay %d: %s", i+1, msg)
			continue
		}
		if i > 0 && d <= r.Delays[i-1] {
			v.problem(p("delays"), e, "retry delays must increase: %s follows %s", d, r.Delays[i-1])
			continue
		}
		if q.Name != "" {
			v.derivedOK(naming.RetryQueue(q.Name, d), fmt.Sprintf("retry tier %s of queue %q", naming.FormatDelay(d), q.Name), p("delays"), e, claim)
		}
	}
	if pl := q.ParkingLot(); pl != "" && q.Name != "" {
		v.derivedOK(pl, fmt.Sprintf("parking lot of queue %q", q.Name), line, e, claim)
	}
}

func (v *validator) derivedOK(name, by string, line int, e string, claim func(name, by string, line int, e string)) {
	if len(name) > 255 {
		v.problem(line, e, "%s would be named %q, longer than 255 bytes; shorten the queue name", by, name)
		return
	}
	claim(name, by, line, e)
}

func (v *validator) bindingsOK() {
	seen := map[string]int{}
	for i, b := range v.t.Bindings {
		e := fmt.Sprintf("bindings[%d]", i)
		p := b.pos.at
		switch {
		case b.Exchange == "":
			v.problem(p("exchange"), e, "exchange is required (the default exchange cannot be bound)")
		case !v.knownExchange(b.Exchange):
			v.problem(p("exchange"), e, "exchange %q is not declared in this file", b.Exchange)
		}
		switch {
		case b.Queue == "" && b.ToExchange == "":
			v.problem(b.pos.line, e, "needs a destination: queue or to_exchange")
		case b.Queue != "" && b.ToExchange != "":
			v.problem(p("to_exchange"), e, "give queue or to_exchange, not both")
		case b.Queue != "" && !v.queues[b.Queue]:
			v.problem(p("queue"), e, "queue %q is not declared in this file", b.Queue)
		case b.ToExchange != "" && !v.knownExchange(b.ToExchange):
			v.problem(p("to_exchange"), e, "to_exchange %q is not declared in this file", b.ToExchange)
		case b.ToExchange != "" && b.ToExchange == b.Exchange:
			v.problem(p("to_exchange"), e, "an exchange cannot be bound to itself")
		}
		if v.knownExchange(b.Exchange) {
			v.keyOK(b, e, v.exchangeType(b.Exchange))
		}
		key := fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%v", b.Exchange, b.Queue, b.ToExchange, b.RoutingKey, bindingArgs(b))
		if first, dup := seen[key]; dup {
			v.problem(b.pos.line, e, "same binding as bindings[%d]", first)
		} else {
			seen[key] = i
		}
	}
}

// keyOK checks the routing key, match and headers against the source exchange's type.
func (v *validator) keyOK(b Binding, e string, kind ExchangeType) {
	p := b.pos.at
	if kind != Headers && (b.Match != "" || len(b.Headers) > 0) {
		v.problem(p("headers"), e, "match and headers apply only to headers exchanges; %q is %s", b.Exchange, kind)
	}
	if len(b.RoutingKey) > 255 {
		v.problem(p("routing_key"), e, "routing_key is longer than 255 bytes")
	}
	switch kind {
	case Topic:
		if msg := topicPatternProblem(b.RoutingKey); msg != "" {
			v.problem(p("routing_key"), e, "routing_key %q: %s", b.RoutingKey, msg)
		}
	case Direct:
		switch {
		case b.RoutingKey == "":
			v.problem(p("routing_key"), e, "routing_key is required for a direct exchange")
		case strings.ContainsAny(b.RoutingKey, "*#"):
			v.problem(p("routing_key"), e, "routing_key %q: direct exchanges match keys exactly; '*' and '#' are wildcards only for topic exchanges", b.RoutingKey)
		}
	case Fanout, Headers:
		if b.RoutingKey != "" {
			v.problem(p("routing_key"), e, "routing_key is ignored by %s exchanges; remove it", kind)
		}
	}
	if kind != Headers {
		return
	}
	switch b.match() {
	case MatchAll, MatchAny, MatchAllWithX, MatchAnyWithX:
	default:
		v.problem(p("match"), e, "unknown match %q: use all, any, all-with-x or any-with-x", b.Match)
	}
	if len(b.Headers) == 0 {
		v.problem(b.pos.line, e, "a headers binding needs headers to match (use a fanout exchange to take everything)")
	}
	for k, val := range b.Headers {
		switch {
		case k == "" || k == "x-match":
			v.problem(p("headers"), e, "header name %q is not allowed", k)
		case strings.HasPrefix(k, "x-") && (b.match() == MatchAll || b.match() == MatchAny):
			v.problem(p("headers"), e, "header %q starts with x- and is ignored by match %s; use %s-with-x", k, b.match(), b.match())
		}
		switch val.(type) {
		case string, int64, int, int32, float64, bool:
		default:
			v.problem(p("headers"), e, "header %q: value must be a string, number or bool, not %T", k, val)
		}
	}
}

// topicPatternProblem checks a topic binding key: dot-separated non-empty words, where '*'
// and '#' stand alone as a word.
func topicPatternProblem(key string) string {
	if key == "" {
		return "a topic binding needs a pattern (use '#' for every message)"
	}
	for _, w := range strings.Split(key, ".") {
		switch {
		case w == "":
			return "empty word (leading, trailing or doubled '.')"
		case w == "*" || w == "#":
		case strings.ContainsAny(w, "*#"):
			return fmt.Sprintf("'*' and '#' must be whole words, not part of %q", w)
		}
	}
	return ""
}
