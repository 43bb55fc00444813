// Command inventory is a small inventory service: a subscriber.Handler reserves stock for each
// "order.placed" event in its own database, exactly once per event. It declares its part of
// the topology (the exchange, its queue with a retry tier, the binding) and stops after
// -expect reservations or at -timeout.
//
//	INVENTORY_DSN='root@tcp(127.0.0.1:3306)/shop_inventory' AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ \
//	  go run ./examples/inventory -expect 100
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
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/subscriber"
	"github.com/syncworker/syncworker/topology"
)

type orderPlaced struct {
	OrderID int64  `json:"order_id"`
	SKU     string `json:"sku"`
	Qty     int    `json:"qty"`
}

// initialStock is what the warehouse holds before the first order.
var initialStock = map[string]int{"apple": 1000, "pear": 10, "plum": 1000}

func main() {
	dsn := flag.String("dsn", os.Getenv("INVENTORY_DSN"), "MySQL DSN of the inventory database (env INVENTORY_DSN)")
	amqpURL := flag.String("amqp-url", os.Getenv("AMQP_URL"), "RabbitMQ URL (env AMQP_URL)")
	exchange := flag.String("exchange", "shop.orders", "topic exchange of the orders service")
	queue := flag.String("queue", "inventory.orders", "this service's queue")
	expect := flag.Int("expect", 100, "stop after this many orders are handled (0: run until -timeout)")
	timeout := flag.Duration("timeout", time.Minute, "stop after this long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *dsn, *amqpURL, *exchange, *queue, *expect); err != nil {
		log.Fatalf("inventory: %v", err)
	}
}

func run(ctx context.Context, dsn, amqpURL, exchange, queue string, expect int) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := setup(ctx, db, amqpURL, exchange, queue); err != nil {
		return err
	}
	sub, err := subscriber.New(db, subscriber.Config{
		AMQPURL: amqpURL, Queue: queue, ConsumerName: "inventory",
		RetryDelays: []time.Duration{time.Second}, // the queue's one retry tier
		Handler:     reserve,
	})
	if err != nil {
		return err
	}
	subCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sub.Run(subCtx) }()
	for handled := 0; expect == 0 || handled < expect; {
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM reservations").Scan(&handled); err != nil {
			stop()
			<-done
			return fmt.Errorf("%d of %d orders handled: %w", handled, expect, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
		if ctx.Err() != nil {
			break
		}
	}
	stop()
	if err := <-done; err != nil {
		return err
	}
	if expect > 0 && ctx.Err() != nil {
		return fmt.Errorf("stopped before %d orders were handled: %w", expect, ctx.Err())
	}
	fmt.Println("inventory: done")
	return nil
}

// reserve is the handler: it runs inside the subscriber's transaction, which also records the
// message id, so a redelivered event never reserves twice.
func reserve(ctx context.Context, tx *sql.Tx, msg subscriber.Message) error {
	var ev orderPlaced
	if err := json.Unmarshal(msg.Payload, &ev); err != nil {
		return fmt.Errorf("bad order.placed: %v: %w", err, subscriber.ErrPermanent) // parked, not retried
	}
	res, err := tx.ExecContext(ctx, "UPDATE stock SET available = available - ? WHERE sku = ? AND available >= ?", ev.Qty, ev.SKU, ev.Qty)
	if err != nil {
		return err
	}
	reserved, err := res.RowsAffected()
	if err != nil {
		return err
	}
	status := "reserved"
	if reserved == 0 {
		status = "rejected" // not enough stock: a business outcome, not an error
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO reservations (order_id, sku, qty, status) VALUES (?, ?, ?, ?)", ev.OrderID, ev.SKU, ev.Qty, status)
	return err
}

// setup creates the tables (seeding the stock once) and declares the topology.
func setup(ctx context.Context, db *sql.DB, amqpURL, exchange, queue string) error {
	if err := outbox.Migrate(ctx, db); err != nil { // the inbox table
		return err
	}
	for _, stmt := range []string{
		"CREATE TABLE IF NOT EXISTS stock (sku VARCHAR(32) PRIMARY KEY, available INT NOT NULL)",
		`CREATE TABLE IF NOT EXISTS reservations (order_id BIGINT PRIMARY KEY, sku VARCHAR(32) NOT NULL,
			qty INT NOT NULL, status VARCHAR(16) NOT NULL)`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	for sku, n := range initialStock {
		if _, err := db.ExecContext(ctx, "INSERT IGNORE INTO stock (sku, available) VALUES (?, ?)", sku, n); err != nil {
			return err
		}
	}
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = topology.Apply(ctx, conn, &topology.Topology{
		Exchanges: []topology.Exchange{{Name: exchange, Type: topology.Topic}},
		Queues:    []topology.Queue{{Name: queue, Retry: &topology.Retry{Delays: []time.Duration{time.Second}}}},
		Bindings:  []topology.Binding{{Exchange: exchange, Queue: queue, RoutingKey: "order.placed"}},
	})
	return err
}
