package topology

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// badFile has one or more problems on the lines listed in TestParseReportsEveryProblem.
const badFile = `exchanges:
  - name: events
    type: topic
  - name: events
    type: topik
  - name: amq.mine
    type: fanout
    alternate_exchange: nowhere
  - type: direct
    colour: blue
queues:
  - name: orders
    delivery_limit: 5
    exclusive: true
    retry:
      delays: [10s, 1s]
  - name: eph
    type: classic
    delivery_limit: 3
    overflow: reject-publish
  - name: ttl
    message_ttl: 10
  - name: orders.parked
  - name: bad-overflow
    max_length: lots
    overflow: drop-tail
bindings:
  - exchange: events
    queue: orders
    routing_key: "order.*x"
  - exchange: missing
    queue: orders
  - exchange: events
    queue: nope
    routing_key: ""
  - exchange: events
    queue: orders
    to_exchange: events
    routing_key: a..b
  - exchange: amq.headers
    queue: orders
    match: some
    headers: {x-kind: a, list: [1, 2]}
  - exchange: amq.direct
    queue: orders
    routing_key: "a.*"
  - exchange: amq.fanout
    queue: orders
    routing_key: x
    headers: {a: b}
  - exchange: amq.match
    queue: orders
    headers: {x-kind: a}
`

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse([]byte(badFile), "bad.yaml")
	if err == nil {
		t.Fatal("Parse accepted a file full of problems")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
	}
	want := []struct {
		line int
		text string
	}{
		{4, `exchange "events": declared twice (first at line 2)`},
		{5, `unknown type "topik"`},
		{6, `exchange "amq.mine": names starting with "amq." are reserved`},
		{8, `alternate_exchange "nowhere" is not declared`},
		{9, "exchanges[3]: name is required"},
		{10, `unknown key "colour"`},
		{14, `queue "orders": quorum queues cannot be exclusive`},
		{15, `retry needs a durable queue that is neither exclusive nor auto-delete`},
		{16, "retry delays must increase: 1s follows 10s"},
		{19, `queue "eph": delivery_limit applies only to quorum queues`},
		{20, "overflow has no effect without max_length"},
		{22, `message_ttl: expected a duration such as 500ms, 10s or 5m, not "10"`},
		{23, `queue name "orders.parked" is declared twice`},
		{25, `max_length: expected a whole number, not "lots"`},
		{26, `unknown overflow "drop-tail"`},
		{26, `"bad-overflow": overflow has no effect without max_length`},
		{30, `routing_key "order.*x": '*' and '#' must be whole words`},
		{31, `exchange "missing" is not declared in this file`},
		{34, `queue "nope" is not declared in this file`},
		{35, `routing_key "": a topic binding needs a pattern`},
		{38, "give queue or to_exchange, not both"},
		{39, `routing_key "a..b": empty word`},
		{42, `unknown match "some"`},
		{53, `header "x-kind" starts with x- and is ignored by match all; use all-with-x`},
		{43, `header "list": value must be a string, number or true/false`},
		{46, `direct exchanges match keys exactly`},
		{49, "routing_key is ignored by fanout exchanges"},
		{50, "match and headers apply only to headers exchanges"},
	}
	problems := flatten(err)
	for _, w := range want {
		found := false
		for _, p := range problems {
			if p.Line == w.line && strings.Contains(p.Error(), w.text) {
				found = true
			}
		}
		if !found {
			t.Errorf("missing problem at bad.yaml:%d containing %q", w.line, w.text)
		}
	}
	for _, p := range problems {
		if p.File != "bad.yaml" {
			t.Errorf("problem without the file name: %v", p)
		}
	}
	if len(problems) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(problems), len(want), err)
	}
	if t.Failed() {
		t.Logf("all problems:\n%v", err)
	}
}

func flatten(err error) []*ValidationError {
	var out []*ValidationError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	var v *ValidationError
	if errors.As(err, &v) {
		out = append(out, v)
	}
	return out
}

func TestParseBrokenYAML(t *testing.T) {
	for name, data := range map[string]string{
		"syntax":    "exchanges: [\n",
		"empty":     "",
		"not a map": "- a\n- b\n",
		"not lists": "exchanges: {a: b}\nqueues: 3\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(data), "f.yaml")
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) = %v, want an ErrInvalid", data, err)
			}
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Errorf("error does not name the file: %v", err)
			}
			if name == "syntax" && !strings.HasPrefix(err.Error(), "f.yaml:1: did not find") {
				t.Errorf("syntax error without its line: %v", err)
			}
		})
	}
}

func TestValidateGoValue(t *testing.T) {
	ok := &Topology{
		Exchanges: []Exchange{{Name: "x", Type: Headers}},
		Queues:    []Queue{{Name: "q", Retry: &Retry{Delays: []time.Duration{time.Second}}}},
		Bindings:  []Binding{{Exchange: "x", Queue: "q", Headers: map[string]any{"n": 1, "x-t": "a"}, Match: MatchAllWithX}},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid topology: %v", err)
	}
	bad := &Topology{
		Queues: []Queue{
			{Name: "q", Durable: Bool(false), MessageTTL: 1500 * time.Microsecond},
			{Name: strings.Repeat("a", 250), Retry: &Retry{Delays: []time.Duration{time.Second}}},
			{Name: "r", Type: Classic, Exclusive: true, Retry: &Retry{ParkingLot: Bool(false)}},
		},
	}
	err := bad.Validate()
	for _, text := range []string{
		`queue "q": quorum queues are always durable`,
		"message_ttl 1.5ms is not a whole number of milliseconds",
		"retry tier 1s of queue",
		"parking lot of queue",
		`queue "r": retry has neither delays nor a parking lot`,
		`queue "r": retry needs a durable queue`,
	} {
		if err == nil || !strings.Contains(err.Error(), text) {
			t.Errorf("Validate() = %v; want a problem containing %q", err, text)
		}
	}
	if n := len(flatten(err)); n != 6 {
		t.Errorf("got %d problems, want 6:\n%v", n, err)
	}
	for _, p := range flatten(err) {
		if strings.Contains(p.Error(), "line") || p.Line != 0 {
			t.Errorf("a Go value has no lines, got %v", p)
		}
	}
}

func TestTopicPattern(t *testing.T) {
	for key, valid := range map[string]bool{
		"order.*": true, "order.#": true, "#": true, "*.created": true, "a.*.#.b": true,
		"": false, "order.": false, ".order": false, "a..b": false, "order*": false, "#.a#": false,
	} {
		if got := topicPatternProblem(key) == ""; got != valid {
			t.Errorf("topicPatternProblem(%q) valid = %v, want %v", key, got, valid)
		}
	}
}

func TestParseInequivalent(t *testing.T) {
	for reason, want := range map[string]string{
		"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'a.b' in vhost '/': received '2000' but current is '1000'":                               "x-message-ttl 2000/1000",
		"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received none but current is the value 'quorum' of type 'longstr'":      "x-queue-type (not set)/quorum:longstr",
		"PRECONDITION_FAILED - inequivalent arg 'x-max-length-bytes' for queue 'q' in vhost 'v': received the value '100' of type 'long' but current is none":      "x-max-length-bytes 100/(not set)",
		"PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'it''s' in vhost '/': received 'false' but current is 'true'":                               "durable false/true",
		"PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange 'x' in vhost '/': received none but current is the value 'ae' of type 'longstr'": "alternate-exchange (not set)/ae:longstr",
		"PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue 'q' in vhost '/' of queue type rabbit_classic_queue":                                       "no",
	} {
		in, ok := parseInequivalent(reason)
		got := "no"
		if ok {
			got = fmt.Sprintf("%s %s/%s", in.arg, in.received.display(), in.current.display())
			if in.current.typ != "" {
				got += ":" + in.current.typ
			}
		}
		if got != want {
			t.Errorf("parseInequivalent(%q) = %q, want %q", reason, got, want)
		}
	}
}
