package subscriber_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/syncworker/syncworker/subscriber"
)

// A handler applies one event inside the subscriber's transaction. Returning an error undoes
// its work and retries the message later; ErrPermanent parks it at once.
func Example() {
	var db *sql.DB // opened on the subscriber's own database, migrated with outbox.Migrate
	handler := func(ctx context.Context, tx *sql.Tx, msg subscriber.Message) error {
		var ev struct {
			OrderID int64  `json:"order_id"`
			Status  string `json:"status"`
		}
		if err := json.Unmarshal(msg.Payload, &ev); err != nil {
			return fmt.Errorf("decode %s: %v: %w", msg.Type, err, subscriber.ErrPermanent)
		}
		_, err := tx.ExecContext(ctx, "UPDATE order_view SET status = ? WHERE id = ?", ev.Status, ev.OrderID)
		return err
	}
	sub, err := subscriber.New(db, subscriber.Config{
		AMQPURL:      "amqp://guest:guest@127.0.0.1:5672/",
		Queue:        "billing.orders",
		ConsumerName: "billing",
		Handler:      handler,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = sub.Run // blocks until its context is cancelled
}

// Row sync needs no handler code: map the event's table to a local one.
func ExampleNewRowSync() {
	rs, err := subscriber.NewRowSync(subscriber.RowSyncConfig{Tables: []subscriber.TableMapping{{
		Source: "orders", Target: "orders_replica", KeyColumns: []string{"id"},
		Columns: []string{"status", "total"},
	}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = subscriber.Config{Handler: rs.Handle}
	fmt.Println("ok")
	// Output: ok
}
