package topology

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ApplyResult says what Apply found and did.
type ApplyResult struct {
	// Plan is what the broker had before Apply changed anything.
	Plan *PlanResult
	// Created lists the exchanges and queues Apply declared, as "exchange NAME" or "queue NAME".
	Created []string
	// Bound counts the bindings Apply declared (already present ones included: binding is idempotent).
	Bound int
}

// Apply validates t, checks every existing exchange and queue against it (as Plan does),
// and only when nothing conflicts declares the missing exchanges and queues and all the
// bindings. On a conflict it returns the plan and every *ConflictError (joined; errors.Is
// ErrConflict) and has changed nothing. It never deletes anything and never redeclares an
// existing entity with other settings, so applying the same topology twice changes nothing.
//
// Exclusive queues belong to conn: they disappear when conn closes.
func Apply(ctx context.Context, conn *amqp.Connection, t *Topology) (*ApplyResult, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	d := t.declarations()
	p, err := plan(ctx, conn, d)
	if err != nil {
		return nil, err
	}
	res := &ApplyResult{Plan: p}
	if err := p.Conflicts(); err != nil {
		return res, err
	}
	create := map[string]bool{}
	for _, c := range p.Changes {
		if c.Action == Create && c.Kind != "binding" {
			create[c.Kind+" "+c.Name] = true
		}
	}
	// One channel suffices now: every declaration is expected to succeed. If another client
	// changed the broker since the check, the refusal closes it and Apply stops there.
	err = onChannel(conn, func(ch *amqp.Channel) error {
		for _, x := range d.exchanges {
			if !create["exchange "+x.name] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := ch.ExchangeDeclare(x.name, x.kind, x.durable, x.autoDelete, x.internal, false, x.args); err != nil {
				return declareError("exchange", x.name, x.line, err)
			}
			res.Created = append(res.Created, "exchange "+x.name)
		}
		for _, q := range d.queues {
			if !create["queue "+q.name] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if _, err := ch.QueueDeclare(q.name, q.durable, q.autoDelete, q.exclusive, false, q.args); err != nil {
				return declareError("queue", q.name, q.line, err)
			}
			res.Created = append(res.Created, "queue "+q.name)
		}
		for _, b := range d.bindings {
			if err := ctx.Err(); err != nil {
				return err
			}
			var err error
			if b.toExchange {
				err = ch.ExchangeBind(b.dest, b.key, b.source, false, b.args)
			} else {
				err = ch.QueueBind(b.dest, b.key, b.source, false, b.args)
			}
			if err != nil {
				return fmt.Errorf("bind %s: %w", b, err)
			}
			res.Bound++
		}
		return nil
	})
	return res, err
}

// declareError turns a refusal during creation (another client declared the entity since
// the check) into a *ConflictError where the broker says what differs.
func declareError(kind, name string, line int, err error) error {
	if amqpCode(err) == amqp.PreconditionFailed {
		var ae *amqp.Error
		if errors.As(err, &ae) {
			if in, ok := parseInequivalent(ae.Reason); ok {
				return &ConflictError{Kind: kind, Entity: name, Line: line, Argument: in.arg,
					Broker: in.current.display(), File: in.received.display()}
			}
		}
	}
	return fmt.Errorf("declare %s %q: %w", kind, name, err)
}
