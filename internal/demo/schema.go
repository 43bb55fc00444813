package demo

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/syncworker/syncworker/outbox"
)

// The orders service's table. The replica has the same columns (filled by row sync); the
// projection keeps one row per order and the totals per customer (filled by a handler).
const (
	ordersDDL = `CREATE TABLE IF NOT EXISTS orders (
	id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	customer_id VARCHAR(32)     NOT NULL,
	status      VARCHAR(16)     NOT NULL,
	amount      DECIMAL(12,2)   NOT NULL,
	created_at  DATETIME(6)     NOT NULL,
	updated_at  DATETIME(6)     NOT NULL,
	version     BIGINT UNSIGNED NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`
	replicaDDL = `CREATE TABLE IF NOT EXISTS orders (
	id          BIGINT UNSIGNED NOT NULL PRIMARY KEY,
	customer_id VARCHAR(32)     NOT NULL,
	status      VARCHAR(16)     NOT NULL,
	amount      DECIMAL(12,2)   NOT NULL,
	created_at  DATETIME(6)     NOT NULL,
	updated_at  DATETIME(6)     NOT NULL,
	version     BIGINT UNSIGNED NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`
	projectionOrdersDDL = `CREATE TABLE IF NOT EXISTS projection_orders (
	order_id     BIGINT UNSIGNED NOT NULL PRIMARY KEY,
	customer_id  VARCHAR(32)     NOT NULL,
	amount_cents BIGINT          NOT NULL,
	version      BIGINT UNSIGNED NOT NULL,
	deleted      BOOLEAN         NOT NULL
) ENGINE=InnoDB`
	customerTotalsDDL = `CREATE TABLE IF NOT EXISTS customer_totals (
	customer_id VARCHAR(32) NOT NULL PRIMARY KEY,
	orders      BIGINT      NOT NULL,
	total_cents BIGINT      NOT NULL
) ENGINE=InnoDB`
)

// prepare creates the database's tables if missing (syncworker's through the migrations) and
// empties the demo's and syncworker's tables, so every run starts from nothing.
func prepare(ctx context.Context, db *sql.DB, ddl ...string) error {
	if _, err := outbox.MigrateTables(ctx, db, outbox.Tables{}); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, stmt := range ddl {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create table: %w", err)
		}
	}
	tables := []string{outbox.DefaultTable, outbox.DefaultDeadTable, outbox.DefaultInboxTable, outbox.DefaultRowVersionTable,
		"orders", "projection_orders", "customer_totals"}
	for _, t := range tables {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?", t).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			continue
		}
		if _, err := db.ExecContext(ctx, "TRUNCATE TABLE "+outbox.QuoteIdentifier(t)); err != nil {
			return fmt.Errorf("empty %s: %w", t, err)
		}
	}
	return nil
}
