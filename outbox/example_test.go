package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"

	_ "github.com/go-sql-driver/mysql"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// Write an order and its event in one transaction: both commit, or neither does.
func Example() {
	ctx := context.Background()
	db, cleanup := exampleDatabase(ctx) // a database with the orders table, migrated
	defer cleanup()

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback() // a no-op after Commit

	if _, err := tx.ExecContext(ctx, "INSERT INTO orders (id, total_cents) VALUES (?, ?)", 42, 1999); err != nil {
		log.Fatal(err)
	}
	err = outbox.Write(ctx, tx, outbox.Message{
		Exchange:      "orders",
		RoutingKey:    "order.created",
		PartitionKey:  "order-42", // events of one order reach the broker in order
		Type:          "order.created",
		AggregateType: "order",
		Payload:       []byte(`{"id":42,"total_cents":1999}`),
	})
	if err != nil {
		log.Fatal(err) // an invalid message: nothing was written, tx is still usable
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}

	var n int
	db.QueryRowContext(ctx, "SELECT COUNT(*) FROM syncworker_outbox").Scan(&n)
	fmt.Println("events waiting for the relay:", n)
	// Output: events waiting for the relay: 1
}

// A service that writes events on every request keeps one prepared Writer for its pool: its
// INSERTs of up to 16 messages then skip the per-call parse on the server.
func ExampleNewPrepared() {
	ctx := context.Background()
	db, cleanup := exampleDatabase(ctx)
	defer cleanup()

	writer, err := outbox.NewPrepared(ctx, db, outbox.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer writer.Close()

	for id := 1; id <= 3; id++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO orders (id, total_cents) VALUES (?, ?)", id, 100*id); err != nil {
			log.Fatal(err)
		}
		if err := writer.Write(ctx, tx, outbox.Message{Exchange: "orders", RoutingKey: "order.created",
			PartitionKey: fmt.Sprint("order-", id), Payload: []byte(fmt.Sprintf(`{"id":%d}`, id))}); err != nil {
			log.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			log.Fatal(err)
		}
	}

	var n int
	db.QueryRowContext(ctx, "SELECT COUNT(*) FROM syncworker_outbox").Scan(&n)
	fmt.Println("events waiting for the relay:", n)
	// Output: events waiting for the relay: 3
}

// exampleDatabase makes a throwaway database on the test server for the example.
func exampleDatabase(ctx context.Context) (*sql.DB, func()) {
	server, err := sql.Open("mysql", testenv.MySQLDSNWithTimeout())
	if err != nil {
		log.Fatal(err)
	}
	name := "swt_example_" + testenv.RandomSuffix(8)
	if _, err := server.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		fmt.Fprintln(os.Stderr, "MariaDB/MySQL unreachable: run ./scripts/test.sh, which starts it")
		log.Fatal(err)
	}
	db, err := sql.Open("mysql", testenv.MySQLDSNFor(name))
	if err != nil {
		log.Fatal(err)
	}
	if err := outbox.Migrate(ctx, db); err != nil {
		log.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE orders (id BIGINT PRIMARY KEY, total_cents BIGINT NOT NULL)"); err != nil {
		log.Fatal(err)
	}
	return db, func() {
		db.Close()
		server.ExecContext(ctx, "DROP DATABASE "+name)
		server.Close()
	}
}
