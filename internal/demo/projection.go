package demo

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/syncworker/syncworker/subscriber"
)

// projectOrder is the projection's subscriber.Handler: it keeps each order's last known
// amount (version-guarded, with tombstones) and adds the difference to its customer's totals.
func projectOrder(ctx context.Context, tx *sql.Tx, msg subscriber.Message) error {
	var ev orderEvent
	if err := json.Unmarshal(msg.Payload, &ev); err != nil || ev.OrderID == 0 || ev.Version == 0 {
		return fmt.Errorf("projection: bad %s payload: %v: %w", msg.Type, err, subscriber.ErrPermanent)
	}
	// Create the order's record (as deleted, version 0) first and then lock it: a locking
	// read of a missing row would take a gap lock and parallel lanes would deadlock.
	if _, err := tx.ExecContext(ctx, "INSERT IGNORE INTO projection_orders (order_id, customer_id, amount_cents, version, deleted) VALUES (?, ?, 0, 0, 1)",
		ev.OrderID, ev.CustomerID); err != nil {
		return err
	}
	var old orderEvent
	if err := tx.QueryRowContext(ctx, "SELECT customer_id, amount_cents, version, deleted FROM projection_orders WHERE order_id = ? FOR UPDATE",
		ev.OrderID).Scan(&old.CustomerID, &old.AmountCents, &old.Version, &old.Deleted); err != nil {
		return err
	}
	if ev.Version <= old.Version {
		return nil // stale or duplicate: a newer state is already projected
	}
	if _, err := tx.ExecContext(ctx, "UPDATE projection_orders SET customer_id = ?, amount_cents = ?, version = ?, deleted = ? WHERE order_id = ?",
		ev.CustomerID, ev.AmountCents, ev.Version, ev.Deleted, ev.OrderID); err != nil {
		return err
	}
	if !old.Deleted {
		if err := addTotals(ctx, tx, old.CustomerID, -1, -old.AmountCents); err != nil {
			return err
		}
	}
	if !ev.Deleted {
		return addTotals(ctx, tx, ev.CustomerID, 1, ev.AmountCents)
	}
	return nil
}

func addTotals(ctx context.Context, tx *sql.Tx, customer string, orders, cents int64) error {
	// The values twice rather than VALUES(col), which MySQL deprecates (MariaDB lacks its successor).
	_, err := tx.ExecContext(ctx, `INSERT INTO customer_totals (customer_id, orders, total_cents) VALUES (?, ?, ?)
		ON DUPLICATE KEY UPDATE orders = orders + ?, total_cents = total_cents + ?`,
		customer, orders, cents, orders, cents)
	return err
}
