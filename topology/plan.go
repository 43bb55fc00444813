package topology

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Action is what Plan found for one entity.
type Action string

// Plan actions.
const (
	Create  Action = "create"  // absent from the broker: apply declares it
	Exists  Action = "exists"  // present and as the file says: apply leaves it alone
	Differs Action = "differs" // present with other settings: apply refuses, see Differences
	// Ensure is for bindings between entities that already exist. AMQP cannot list
	// bindings, so plan cannot tell whether they are there; apply binds, which is idempotent.
	Ensure Action = "ensure"
)

// Change is the plan for one exchange, queue or binding.
type Change struct {
	Kind   string // "exchange", "queue" or "binding"
	Name   string // entity name; for a binding "source -> destination [key] {args}"
	Action Action
	Origin string // for derived queues, for example "retry tier of orders"
	Line   int    // line in the file; 0 when unknown
	// Messages and Consumers are the broker's counts for an existing queue.
	Messages, Consumers int
	// Differences lists, for Differs, every argument the broker has otherwise.
	Differences []*ConflictError
	// Notes are what a person should know of an entity apply leaves as it is.
	Notes []string
}

// PlanResult is what Plan found, in declaration order: exchanges, queues, bindings.
type PlanResult struct {
	Changes []Change
}

// Conflicts returns the differences of every entity, joined (nil when there are none);
// errors.Is(err, ErrConflict) and errors.As(err, **ConflictError) work on it.
func (p *PlanResult) Conflicts() error {
	var errs []error
	for _, c := range p.Changes {
		for _, d := range c.Differences {
			errs = append(errs, d)
		}
	}
	return errors.Join(errs...)
}

// Count returns how many changes have action a.
func (p *PlanResult) Count(a Action) int {
	n := 0
	for _, c := range p.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// Format writes the plan for people: one line per entity, differences indented below.
func (p *PlanResult) Format(w io.Writer) error {
	var b strings.Builder
	for _, c := range p.Changes {
		fmt.Fprintf(&b, "%-8s %-8s %s", c.Action, c.Kind, c.Name)
		var notes []string
		if c.Origin != "" {
			notes = append(notes, c.Origin)
		}
		if c.Kind == "queue" && c.Action != Create {
			notes = append(notes, fmt.Sprintf("%d messages, %d consumers", c.Messages, c.Consumers))
		}
		if len(notes) > 0 {
			fmt.Fprintf(&b, "  (%s)", strings.Join(notes, "; "))
		}
		b.WriteString("\n")
		for _, d := range c.Differences {
			fmt.Fprintf(&b, "           %s: broker has %s, file says %s\n", d.Argument, d.Broker, d.File)
		}
		for _, n := range c.Notes {
			fmt.Fprintf(&b, "           note: %s\n", n)
		}
	}
	fmt.Fprintf(&b, "%d to create, %d differing, %d unchanged, %d bindings to ensure\n",
		p.Count(Create), p.Count(Differs), p.Count(Exists), p.Count(Ensure))
	_, err := io.WriteString(w, b.String())
	return err
}

// Plan validates t and compares it with the broker without changing anything: passive
// declarations find what exists, and existing exchanges and queues are compared with the
// file by declaring them exactly as they already are (see inspect.go). Bindings cannot be
// listed over AMQP: those between existing entities are shown as Ensure.
func Plan(ctx context.Context, conn *amqp.Connection, t *Topology) (*PlanResult, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return plan(ctx, conn, t.declarations())
}

func plan(ctx context.Context, conn *amqp.Connection, d declarations) (*PlanResult, error) {
	res := &PlanResult{}
	created := map[string]bool{} // "exchange name" / "queue name" that apply would create
	for _, x := range d.exchanges {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		obs, err := observeExchange(conn, x)
		if err != nil {
			return nil, err
		}
		c := change("exchange", x.name, "", x.line, obs)
		if c.Action == Create {
			created["exchange "+x.name] = true
		}
		res.Changes = append(res.Changes, c)
	}
	for _, q := range d.queues {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		obs, err := observeQueue(conn, q)
		if err != nil {
			return nil, err
		}
		var note string
		if q.parkingLot {
			obs.differences, note = oldParkingLot(obs.differences)
		}
		c := change("queue", q.name, q.origin, q.line, obs)
		if note != "" {
			c.Notes = append(c.Notes, note)
		}
		if c.Action == Create {
			created["queue "+q.name] = true
		}
		res.Changes = append(res.Changes, c)
	}
	for _, b := range d.bindings {
		destKind := "queue "
		if b.toExchange {
			destKind = "exchange "
		}
		a := Ensure
		if created["exchange "+b.source] || created[destKind+b.dest] {
			a = Create
		}
		res.Changes = append(res.Changes, Change{Kind: "binding", Name: b.String(), Action: a, Line: b.line})
	}
	return res, nil
}

func change(kind, name, origin string, line int, obs observation) Change {
	c := Change{Kind: kind, Name: name, Origin: origin, Line: line, Action: Create}
	switch {
	case !obs.exists:
	case len(obs.differences) > 0:
		c.Action, c.Differences = Differs, obs.differences
	default:
		c.Action = Exists
	}
	c.Messages, c.Consumers = obs.messages, obs.consumers
	return c
}

// oldParkingLot takes a missing x-delivery-limit out of a parking lot's differences. Lots
// declared before syncworker gave them one work as they did, and a queue's arguments cannot be
// changed in place: refusing them would block every apply of an upgraded topology until the
// lot is drained and deleted. It returns the note plan shows instead.
func oldParkingLot(diffs []*ConflictError) ([]*ConflictError, string) {
	for i, d := range diffs {
		if d.Argument == "x-delivery-limit" && d.Broker == notSet {
			return append(diffs[:i:i], diffs[i+1:]...), "declared without x-delivery-limit (by an older syncworker): " +
				"RabbitMQ 4 gives it the default limit of 20 deliveries and drops a message returned that often; " +
				"set a delivery-limit policy on it, or drain, delete and apply it again (see topology/README.md)"
		}
	}
	return diffs, ""
}
