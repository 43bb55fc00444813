package main

import (
	"context"
	"fmt"

	"github.com/syncworker/syncworker/internal/redact"
	"github.com/syncworker/syncworker/outbox"
)

func init() {
	register(&command{name: "migrate", summary: "create or upgrade syncworker's tables", run: runMigrate})
}

func runMigrate(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "migrate", "[--config FILE] [--dsn DSN]")
	need := needs{mysql: true}
	b := bindSettings(fs, need)
	s, env, err := b.parse(env, args, need)
	if err != nil {
		return err
	}
	return redactErr(migrateWith(ctx, env, s), s)
}

func migrateWith(ctx context.Context, env *cliEnv, s *settings) error {
	db, err := openDB(s, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := pingDB(ctx, db, s); err != nil {
		return err
	}
	applied, err := outbox.MigrateTables(ctx, db, outbox.Tables{})
	if err != nil {
		return fmt.Errorf("%s: %w", redact.DSN(s.MySQL.DSN), err)
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
