// Package demo runs syncworker's whole flow on one machine: an orders service writing orders
// and events in transactions, the relay, a row-sync replica and a handler-based projection,
// with live progress, ending with verify. `syncworker demo` is its command.
package demo

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"

	"github.com/syncworker/syncworker/internal/redact"
	"github.com/syncworker/syncworker/internal/verify"
	"github.com/syncworker/syncworker/outbox"
)

// Config configures a demo run. ServerDSN and AMQPURL are required.
type Config struct {
	// ServerDSN reaches the MySQL server; its database part is ignored. The demo creates (if
	// missing) and uses the databases <DatabasePrefix>_orders, _replica and _projection.
	ServerDSN string
	// AMQPURL of the broker.
	AMQPURL string
	// DatabasePrefix names the databases. Default "syncworker_demo".
	DatabasePrefix string
	// Prefix names the broker entities: <Prefix>.orders (exchange), <Prefix>.replica and
	// <Prefix>.projection (queues). Default "demo".
	Prefix string
	// Orders is the number of orders to create. Default 2000. Every 4th is then updated and
	// every 10th deleted, each change in its own transaction with its two events.
	Orders int
	// Writers is the number of goroutines writing orders. Default 8.
	Writers int
	// ExternalWorkers: the relay and the replica consumer run as their own processes (as in
	// docker-compose.yml); the demo only sets up, produces, runs the projection (a Go
	// handler), watches and verifies. It never drops the databases then.
	ExternalWorkers bool
	// Keep leaves the databases in place at the end. Default: they are dropped, unless
	// ExternalWorkers.
	Keep bool
	// Timeout bounds the wait for every event to be applied after the last order was
	// written. Default 2 minutes.
	Timeout time.Duration
	// Progress receives the live progress; nil discards it. Terminal redraws one line with
	// \r every ProgressInterval (default 200ms); otherwise a line is written every 2s.
	Progress         io.Writer
	Terminal         bool
	ProgressInterval time.Duration
	// Logger for the relay and subscribers; nil means zap.NewNop().
	Logger *zap.Logger
}

func (c *Config) setDefaults() {
	if c.DatabasePrefix == "" {
		c.DatabasePrefix = "syncworker_demo"
	}
	if c.Prefix == "" {
		c.Prefix = "demo"
	}
	if c.Orders == 0 {
		c.Orders = 2000
	}
	if c.Writers == 0 {
		c.Writers = 8
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = 200 * time.Millisecond
		if !c.Terminal {
			c.ProgressInterval = 2 * time.Second
		}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Validate returns every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.ServerDSN == "" {
		errs = append(errs, errors.New("ServerDSN is required"))
	} else if _, err := mysql.ParseDSN(c.ServerDSN); err != nil {
		errs = append(errs, fmt.Errorf("ServerDSN %s: %w", redact.DSN(c.ServerDSN), err))
	}
	if c.AMQPURL == "" {
		errs = append(errs, errors.New("AMQPURL is required"))
	}
	if c.Orders < 1 {
		errs = append(errs, fmt.Errorf("Orders %d must be at least 1", c.Orders))
	}
	if c.Writers < 1 {
		errs = append(errs, fmt.Errorf("Writers %d must be at least 1", c.Writers))
	}
	if err := outbox.ValidateIdentifier(c.DatabasePrefix + "_projection"); err != nil {
		errs = append(errs, fmt.Errorf("DatabasePrefix %q: %w", c.DatabasePrefix, err))
	}
	return errors.Join(errs...)
}

// Result is what a run did and found.
type Result struct {
	Orders      int
	Events      int64         // committed outbox messages, both kinds
	ProduceTime time.Duration // writing every order and its events
	SyncTime    time.Duration // from the first write until every event was applied in both databases
	Verify      *verify.Report
	Projection  ProjectionCheck
}

// Drift reports whether the replica or the projection differ from the orders table.
func (r *Result) Drift() bool { return r.Verify.Drift() || r.Projection.Wrong > 0 }

// Databases are the names a run uses.
func (c Config) Databases() (orders, replica, projection string) {
	return c.DatabasePrefix + "_orders", c.DatabasePrefix + "_replica", c.DatabasePrefix + "_projection"
}

// dsnFor is ServerDSN selecting db, with one round trip per statement.
func dsnFor(server, db string) string {
	cfg, _ := mysql.ParseDSN(server) // Validate checked it
	cfg.DBName = db
	cfg.InterpolateParams = true
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	return cfg.FormatDSN()
}

func openDB(server, name string, maxOpen int) (*sql.DB, error) {
	db, err := sql.Open("mysql", dsnFor(server, name))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxOpen)
	return db, nil
}
