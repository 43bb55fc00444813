package bench

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/go-sql-driver/mysql"

	"github.com/syncworker/syncworker/internal/redact"
	"github.com/syncworker/syncworker/outbox"
)

// benchDatabase creates a migrated, uniquely named database for one scenario and returns a
// pool on it (with interpolateParams, as the README recommends for writers), its DSN and a
// function that drops it.
func benchDatabase(ctx context.Context, serverDSN, name string) (*sql.DB, string, func(), error) {
	cfg, err := mysql.ParseDSN(serverDSN)
	if err != nil {
		return nil, "", nil, fmt.Errorf("parse DSN %s: %w", redact.DSN(serverDSN), err)
	}
	cfg.DBName = ""
	server, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, "", nil, err
	}
	if _, err := server.ExecContext(ctx, "CREATE DATABASE "+outbox.QuoteIdentifier(name)); err != nil {
		server.Close()
		return nil, "", nil, fmt.Errorf("create bench database on %s: %w", redact.DSN(serverDSN), err)
	}
	drop := func() {
		server.ExecContext(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+outbox.QuoteIdentifier(name)) //nolint:errcheck // best effort
		server.Close()
	}
	cfg.DBName = name
	cfg.InterpolateParams = true
	cfg.ParseTime = true
	dsn := cfg.FormatDSN()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		drop()
		return nil, "", nil, err
	}
	// As a service running a relay or subscriber should: connections are kept, not redialled
	// after every burst (database/sql keeps 2 idle by default).
	db.SetMaxIdleConns(64)
	if err := outbox.Migrate(ctx, db); err != nil {
		db.Close()
		drop()
		return nil, "", nil, err
	}
	return db, dsn, func() { db.Close(); drop() }, nil
}
