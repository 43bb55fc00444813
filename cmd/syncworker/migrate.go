package main

import (
	"context"
	"database/sql"
	"fmt"

	_ "github.com/go-sql-driver/mysql"

	"github.com/syncworker/syncworker/internal/redact"
	"github.com/syncworker/syncworker/outbox"
)

func init() {
	register(&command{name: "migrate", summary: "create or upgrade syncworker's tables", run: runMigrate})
}

func runMigrate(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "migrate", "[--dsn DSN]")
	dsn := fs.String("dsn", env.getenv("SYNCWORKER_MYSQL_DSN"),
		"MySQL DSN of the database to migrate, for example 'user:pass@tcp(host:3306)/app' (env SYNCWORKER_MYSQL_DSN)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dsn == "" {
		return fmt.Errorf("--dsn (or SYNCWORKER_MYSQL_DSN) is required")
	}
	db, err := sql.Open("mysql", *dsn)
	if err != nil {
		return fmt.Errorf("open %s: %w", redact.DSN(*dsn), err)
	}
	defer db.Close()
	applied, err := outbox.MigrateTables(ctx, db, outbox.Tables{})
	if err != nil {
		return fmt.Errorf("%s: %w", redact.DSN(*dsn), err)
	}
	version, err := outbox.SchemaVersion(ctx, db, outbox.Tables{})
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(env.stdout, "schema is up to date at version %d\n", version)
	} else {
		fmt.Fprintf(env.stdout, "applied migrations %v; schema is at version %d\n", applied, version)
	}
	return nil
}
