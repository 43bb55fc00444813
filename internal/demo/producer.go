package demo

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/syncworker/syncworker/outbox"
)

// plan says what happens to the i-th order after it is created: every 4th is updated (paid,
// amount changed), every 10th deleted. Both sides of the demo compute expectations from it.
func plan(i int) (update, del bool) { return i%4 == 0, i%10 == 0 }

// expectedEvents is how many row-sync events (and as many domain events) n orders make.
func expectedEvents(n int) int64 {
	var total int64
	for i := 1; i <= n; i++ {
		update, del := plan(i)
		total++
		if update {
			total++
		}
		if del {
			total++
		}
	}
	return total
}

// orderEvent is the payload of the domain events order.created, order.updated, order.deleted.
type orderEvent struct {
	OrderID     uint64 `json:"order_id"`
	CustomerID  string `json:"customer_id"`
	AmountCents int64  `json:"amount_cents"`
	Version     uint64 `json:"version"`
	Deleted     bool   `json:"deleted,omitempty"`
}

type order struct {
	id                   uint64
	customer, status     string
	cents                int64
	createdAt, updatedAt time.Time
	version              uint64
}

func (o order) amount() string { return fmt.Sprintf("%d.%02d", o.cents/100, o.cents%100) }

// producer plays the orders service: each change of an order and its two events (row sync
// for the replica, a domain event for the projection) commit in one transaction.
type producer struct {
	db       *sql.DB
	exchange string
	orders   int
	writers  int
	notify   func() // Relay.Notify when the relay is embedded

	next     atomic.Int64
	produced atomic.Int64 // events committed (both kinds)
}

func (p *producer) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for range p.writers {
		g.Go(func() error {
			for {
				i := int(p.next.Add(1))
				if i > p.orders || ctx.Err() != nil {
					return ctx.Err()
				}
				if err := p.one(ctx, i); err != nil {
					return fmt.Errorf("order %d: %w", i, err)
				}
			}
		})
	}
	return g.Wait()
}

// one creates order i and then updates or deletes it as plan says, each in a transaction.
func (p *producer) one(ctx context.Context, i int) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	o := order{customer: fmt.Sprintf("c%03d", i%50), status: "new", cents: int64(1000 + i*7%9000),
		createdAt: now, updatedAt: now, version: 1}
	err := p.tx(ctx, "order.created", &o, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO orders (customer_id, status, amount, created_at, updated_at, version)
			VALUES (?, ?, ?, ?, ?, ?)`, o.customer, o.status, o.amount(), o.createdAt, o.updatedAt, o.version)
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		o.id = uint64(id)
		return err
	})
	if err != nil {
		return err
	}
	update, del := plan(i)
	if update {
		o.status, o.cents, o.version = "paid", o.cents+250, o.version+1
		o.updatedAt = time.Now().UTC().Truncate(time.Microsecond)
		if err := p.tx(ctx, "order.updated", &o, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "UPDATE orders SET status = ?, amount = ?, updated_at = ?, version = ? WHERE id = ?",
				o.status, o.amount(), o.updatedAt, o.version, o.id)
			return err
		}); err != nil {
			return err
		}
	}
	if del {
		o.version++
		return p.tx(ctx, "order.deleted", &o, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "DELETE FROM orders WHERE id = ?", o.id)
			return err
		})
	}
	return nil
}

// tx runs change and writes the row-sync event and the domain event in one transaction.
func (p *producer) tx(ctx context.Context, eventType string, o *order, change func(*sql.Tx) error) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := change(tx); err != nil {
		return err
	}
	key := map[string]any{"id": o.id}
	deleted := eventType == "order.deleted"
	var row outbox.Message
	if deleted {
		row, err = outbox.RowDelete("orders", key, o.version)
	} else {
		row, err = outbox.RowUpsert("orders", key, map[string]any{"customer_id": o.customer, "status": o.status,
			"amount": o.amount(), "created_at": o.createdAt, "updated_at": o.updatedAt, "version": o.version}, o.version)
	}
	if err != nil {
		return err
	}
	row.Exchange, row.RoutingKey = p.exchange, "row.orders"
	payload, err := json.Marshal(orderEvent{OrderID: o.id, CustomerID: o.customer, AmountCents: o.cents, Version: o.version, Deleted: deleted})
	if err != nil {
		return err
	}
	// Keyed by customer: one subscriber lane then owns each customer's totals row, so lanes
	// never wait for each other's locks (keying by order made them deadlock on the totals).
	domain := outbox.Message{Exchange: p.exchange, RoutingKey: eventType, Type: eventType, AggregateType: "order",
		PartitionKey: "customer:" + o.customer, Payload: payload}
	if err := outbox.Write(ctx, tx, row, domain); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	p.produced.Add(2)
	if p.notify != nil {
		p.notify()
	}
	return nil
}
