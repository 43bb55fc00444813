package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/syncworker/syncworker/internal/redact"
)

// MySQLDSN is the server DSN integration tests use (no database selected).
func MySQLDSN() string { return envOr(EnvMySQLDSN, DefaultMySQLDSN) }

// Database is a fresh database created for one test.
type Database struct {
	Name string  // the database name, swt_<random>
	DSN  string  // a DSN selecting the database, with parseTime=true
	DB   *sql.DB // an open pool on DSN
}

// NewDatabase creates a randomly named database, returns a pool on it and drops it when the
// test ends. It fails the test (never skips, unless SYNCWORKER_SKIP_INTEGRATION=1) when the
// server cannot be reached.
func NewDatabase(t testing.TB) *Database {
	t.Helper()
	Integration(t)
	cfg, err := mysql.ParseDSN(MySQLDSN())
	if err != nil {
		t.Fatalf("%s is not a valid MySQL DSN: %v", EnvMySQLDSN, err)
	}
	cfg.Timeout = 5 * time.Second
	cfg.ParseTime = true
	server, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("open MySQL: %v", err)
	}
	defer server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := server.PingContext(ctx); err != nil {
		t.Fatalf("MariaDB/MySQL is not reachable at %s: %v\n"+
			"Start it (Debian: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql),\n"+
			"or run ./scripts/test.sh, which starts it; set %s to another server, or %s=1 to skip integration tests.",
			redact.DSN(MySQLDSN()), err, EnvMySQLDSN, EnvSkip)
	}
	name := "swt_" + RandomSuffix(12)
	if _, err := server.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	cfg.DBName = name
	d := &Database{Name: name, DSN: cfg.FormatDSN()}
	d.DB, err = sql.Open("mysql", d.DSN)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() {
		d.DB.Close()
		drop, err := sql.Open("mysql", MySQLDSNWithTimeout())
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer drop.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := drop.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return d
}

// MySQLDSNWithTimeout is MySQLDSN with a connect timeout, for helper connections.
func MySQLDSNWithTimeout() string { return MySQLDSNFor("") }

// MySQLDSNFor is the test server's DSN selecting database dbName (none when empty), with a
// connect timeout and parseTime=true.
func MySQLDSNFor(dbName string) string {
	cfg, err := mysql.ParseDSN(MySQLDSN())
	if err != nil {
		return MySQLDSN()
	}
	cfg.Timeout = 5 * time.Second
	cfg.ParseTime = true
	cfg.DBName = dbName
	return cfg.FormatDSN()
}

// DSNVia returns dsn with its address replaced by addr, for example a fault proxy's.
func DSNVia(t testing.TB, dsn, addr string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	cfg.Net, cfg.Addr = "tcp", addr
	return cfg.FormatDSN()
}

// MySQLAddr returns the host:port of the test server.
func MySQLAddr(t testing.TB) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(MySQLDSN())
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	if cfg.Net != "tcp" {
		t.Fatalf("%s must use tcp for this test, not %s", EnvMySQLDSN, cfg.Net)
	}
	return fmt.Sprint(cfg.Addr)
}

// OpenDSN opens dsn as change (if not nil) alters it, for example with interpolateParams on,
// and closes it when the test ends.
func OpenDSN(t testing.TB, dsn string, change func(*mysql.Config)) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	if change != nil {
		change(cfg)
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("open %s: %v", cfg.DBName, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
