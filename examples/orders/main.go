// Command orders is a small orders service: it places N orders, each with an "order.placed"
// event written by the outbox library in the same transaction, and embeds the relay, which it
// wakes with Notify after every commit. It exits once every event is at the broker.
//
//	ORDERS_DSN='root@tcp(127.0.0.1:3306)/shop_orders' AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ \
//	  go run ./examples/orders -orders 100
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/publisher"
)

// OrderPlaced is the event's payload; examples/inventory reads it.
type OrderPlaced struct {
	OrderID int64  `json:"order_id"`
	SKU     string `json:"sku"`
	Qty     int    `json:"qty"`
}

var skus = []string{"apple", "pear", "plum"}

func main() {
	dsn := flag.String("dsn", os.Getenv("ORDERS_DSN"), "MySQL DSN of the orders database (env ORDERS_DSN)")
	amqpURL := flag.String("amqp-url", os.Getenv("AMQP_URL"), "RabbitMQ URL (env AMQP_URL)")
	exchange := flag.String("exchange", "shop.orders", "topic exchange the events go to (examples/inventory declares it)")
	n := flag.Int("orders", 100, "orders to place")
	timeout := flag.Duration("timeout", time.Minute, "give up if the events are not all published by then")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *dsn, *amqpURL, *exchange, *n); err != nil {
		log.Fatalf("orders: %v", err)
	}
}

func run(ctx context.Context, dsn, amqpURL, exchange string, n int) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := outbox.Migrate(ctx, db); err != nil { // the outbox and the relay's tables
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS orders (
		id BIGINT AUTO_INCREMENT PRIMARY KEY, sku VARCHAR(32) NOT NULL, qty INT NOT NULL)`); err != nil {
		return err
	}

	cfg := publisher.Config{DB: db}
	cfg.AMQP.URL, cfg.AMQP.Name = amqpURL, "orders example"
	relay, err := publisher.New(cfg)
	if err != nil {
		return err
	}
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()

	for i := range n {
		if err := placeOrder(ctx, db, exchange, skus[i%len(skus)], 1+i%3); err != nil {
			stopRelay()
			return err
		}
		relay.Notify() // publish now instead of at the relay's next poll
	}
	err = waitForEmptyOutbox(ctx, db)
	stopRelay()
	if relayErr := <-relayDone; err == nil {
		err = relayErr
	}
	if err == nil {
		fmt.Printf("orders: placed %d orders; every event is at the broker\n", n)
	}
	return err
}

// placeOrder inserts the order and its event in one transaction: both or neither.
func placeOrder(ctx context.Context, db *sql.DB, exchange, sku string, qty int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	res, err := tx.ExecContext(ctx, "INSERT INTO orders (sku, qty) VALUES (?, ?)", sku, qty)
	if err != nil {
		return err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return err
	}
	payload, err := json.Marshal(OrderPlaced{OrderID: id, SKU: sku, Qty: qty})
	if err != nil {
		return err
	}
	if err := outbox.Write(ctx, tx, outbox.Message{
		Exchange: exchange, RoutingKey: "order.placed", Type: "order.placed",
		PartitionKey: sku, // one SKU's orders reach the inventory in order
		Payload:      payload,
	}); err != nil {
		return err
	}
	return tx.Commit()
}

func waitForEmptyOutbox(ctx context.Context, db *sql.DB) error {
	for {
		var left int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+outbox.DefaultTable).Scan(&left); err != nil {
			return err
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d events not published: %w", left, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
