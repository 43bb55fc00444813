package topology

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/syncworker/syncworker/internal/testenv"
)

// TestApplyTwiceChangesNothing applies the shipped example twice: the second run finds
// everything in place, creates nothing and leaves queued messages alone.
func TestApplyTwiceChangesNothing(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	top, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	prefix(b, top)
	first := apply(t, b, top)
	if len(first.Created) == 0 || first.Plan.Count(Create) == 0 {
		t.Fatalf("first apply created nothing: %+v", first)
	}
	if first.Bound != len(top.Bindings) {
		t.Errorf("first apply bound %d, want %d", first.Bound, len(top.Bindings))
	}
	q := b.Prefix + "orders.projection"
	newPublisher(t, b).publish("", q, "kept", nil)

	second := apply(t, b, top)
	if len(second.Created) != 0 {
		t.Errorf("second apply created %v", second.Created)
	}
	for _, c := range second.Plan.Changes {
		want := Exists
		if c.Kind == "binding" {
			want = Ensure
		}
		if c.Action != want {
			t.Errorf("second apply: %s %s is %s, want %s %v", c.Kind, c.Name, c.Action, want, c.Differences)
		}
	}
	if st, _ := queueExists(t, b, q); st.Messages != 1 {
		t.Errorf("%s holds %d messages after the second apply, want 1", q, st.Messages)
	}
}

const conflictBefore = `
exchanges:
  - {name: x, type: topic}
queues:
  - {name: q, message_ttl: 1s}
  - {name: tiered, retry: {delays: [1s]}}
  - {name: plain}
bindings:
  - {exchange: x, queue: q, routing_key: "a.*"}
`

// conflictAfter changes q (three arguments), x (its type), tiered (a delivery limit and a
// tier), gives plain a parking lot, and adds a queue, an exchange and bindings.
const conflictAfter = `
exchanges:
  - {name: x, type: direct}
  - {name: new-x, type: fanout}
queues:
  - {name: q, message_ttl: 2s, max_length: 10, overflow: drop-head}
  - {name: tiered, retry: {delays: [1s, 5s]}, delivery_limit: 3}
  - {name: new-q}
  - {name: plain, retry: {parking_lot: true}}
bindings:
  - {exchange: x, queue: q, routing_key: a}
  - {exchange: new-x, queue: new-q}
`

type diff struct{ kind, entity, arg, broker, file string }

func diffsOf(err error) []diff {
	var out []diff
	for _, e := range flattenAll(err) {
		var c *ConflictError
		if errors.As(e, &c) {
			out = append(out, diff{c.Kind, c.Entity, c.Argument, c.Broker, c.File})
		}
	}
	sortDiffs(out)
	return out
}

func sortDiffs(d []diff) {
	sort.Slice(d, func(i, j int) bool { return d[i].entity+" "+d[i].arg < d[j].entity+" "+d[j].arg })
}

func flattenAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenAll(e)...)
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// TestConflictIsReportedAndChangesNothing: a file that differs from the broker gets every
// difference reported, by Apply and by Plan, and neither declares anything.
func TestConflictIsReportedAndChangesNothing(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	apply(t, b, parseFor(t, b, conflictBefore))
	n := func(s string) string { return b.Prefix + s }
	newPublisher(t, b).publish("", n("q"), "kept", nil)

	after := parseFor(t, b, conflictAfter)
	want := []diff{
		{"queue", n("q"), "x-max-length", "(not set)", "10"},
		{"queue", n("q"), "x-message-ttl", "1000", "2000"},
		{"queue", n("plain"), "x-dead-letter-exchange", "(not set)", `""`},
		{"queue", n("plain"), "x-dead-letter-routing-key", "(not set)", n("plain.parked")},
		{"queue", n("q"), "x-overflow", "(not set)", "drop-head"},
		{"queue", n("tiered"), "x-delivery-limit", "(not set)", "3"},
		{"exchange", n("x"), "type", "topic", "direct"},
	}
	sortDiffs(want)
	checkUntouched := func(when string) {
		t.Helper()
		for _, name := range []string{"new-q", "tiered.retry.5s"} {
			if _, ok := queueExists(t, b, n(name)); ok {
				t.Errorf("%s: queue %s was created", when, name)
			}
		}
		if exchangeExists(t, b, n("new-x")) {
			t.Errorf("%s: exchange new-x was created", when)
		}
		if st, _ := queueExists(t, b, n("q")); st.Messages != 1 {
			t.Errorf("%s: q holds %d messages, want 1", when, st.Messages)
		}
	}

	res, err := Apply(context.Background(), b.Conn, after)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("Apply of a conflicting file: err = %v, want ErrConflict", err)
	}
	if got := diffsOf(err); !equalDiffs(got, want) {
		t.Errorf("Apply reported\n%v\nwant\n%v", got, want)
	}
	if res == nil || len(res.Created) != 0 || res.Bound != 0 {
		t.Errorf("Apply changed the broker: %+v", res)
	}
	if !strings.Contains(err.Error(), `queue "`+n("q")+`" differs from the broker: x-message-ttl is 1000 on the broker, the file says 2000`) {
		t.Errorf("unclear report: %v", err)
	}
	checkUntouched("after Apply")

	plan, err := Plan(context.Background(), b.Conn, after)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if got := diffsOf(plan.Conflicts()); !equalDiffs(got, want) {
		t.Errorf("Plan reported\n%v\nwant\n%v", got, want)
	}
	actions := map[string]Action{}
	for _, c := range plan.Changes {
		actions[c.Kind+" "+strings.TrimPrefix(c.Name, b.Prefix)] = c.Action
	}
	for entity, a := range map[string]Action{
		"exchange x": Differs, "exchange new-x": Create, "queue q": Differs, "queue new-q": Create,
		"queue tiered": Differs, "queue tiered.retry.1s": Exists, "queue tiered.retry.5s": Create,
		"queue tiered.parked": Exists, "queue plain": Differs, "queue plain.parked": Create,
	} {
		if actions[entity] != a {
			t.Errorf("plan: %s is %q, want %q", entity, actions[entity], a)
		}
	}
	var out strings.Builder
	if err := plan.Format(&out); err != nil || !strings.Contains(out.String(), "x-message-ttl: broker has 1000, file says 2000") {
		t.Errorf("plan text (err %v):\n%s", err, out.String())
	}
	checkUntouched("after Plan")

	// The probing left the broker as it was: the original file still applies cleanly.
	again := apply(t, b, parseFor(t, b, conflictBefore))
	if len(again.Created) != 0 || again.Plan.Conflicts() != nil {
		t.Errorf("re-applying the original file: %+v, conflicts %v", again, again.Plan.Conflicts())
	}
}

func equalDiffs(a, b []diff) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestInvalidTopologyNeedsNoBroker: Plan and Apply validate first and return every problem
// without touching the connection (nil here).
func TestInvalidTopologyNeedsNoBroker(t *testing.T) {
	top := &Topology{Queues: []Queue{{Name: "q", Type: Classic, DeliveryLimit: 2}, {Name: "q"}}}
	for name, run := range map[string]func() error{
		"Plan":  func() error { _, err := Plan(context.Background(), nil, top); return err },
		"Apply": func() error { _, err := Apply(context.Background(), nil, top); return err },
	} {
		err := run()
		if !errors.Is(err, ErrInvalid) || len(flatten(err)) != 2 {
			t.Errorf("%s = %v, want the 2 problems", name, err)
		}
	}
}

// TestExclusiveQueueOfAnotherConnection: a queue locked by another connection cannot be
// inspected; plan and apply report it on "exclusive" instead of failing obscurely.
func TestExclusiveQueueOfAnotherConnection(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	other := testenv.NewBroker(t)
	name := b.Name("mine")
	if _, err := other.Channel().QueueDeclare(name, false, true, true, false, nil); err != nil {
		t.Fatal(err)
	}
	top := &Topology{Queues: []Queue{{Name: name, Type: Classic, Durable: Bool(false), AutoDelete: true, Exclusive: true}}}
	plan, err := Plan(context.Background(), b.Conn, top)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if c := plan.Changes[0]; c.Action != Differs || len(c.Differences) != 1 || c.Differences[0].Argument != "exclusive" {
		t.Errorf("plan of a locked queue: %+v", c)
	}
	if _, err := Apply(context.Background(), b.Conn, top); !errors.Is(err, ErrConflict) {
		t.Errorf("Apply of a locked queue: %v, want ErrConflict", err)
	}

	// An exclusive queue of the applying connection is declared, and found again.
	own := &Topology{Queues: []Queue{{Name: b.Name("own"), Type: Classic, Durable: Bool(false), Exclusive: true}}}
	if res := apply(t, b, own); len(res.Created) != 1 {
		t.Errorf("first apply of an exclusive queue created %v", res.Created)
	}
	if res := apply(t, b, own); len(res.Created) != 0 || res.Plan.Count(Exists) != 1 {
		t.Errorf("second apply of an exclusive queue: %+v", res.Plan.Changes)
	}
}
