package main

import (
	"strings"
	"testing"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// A database migrated by an older syncworker (version 1, before the relay instance columns)
// is refused by the relay with the versions and what to do, instead of heartbeats that fail
// on a missing column for ever; after `syncworker migrate` the check passes.
func TestRelayOnAnOlderSchemaSaysToMigrate(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	if err := outbox.Migrate(t.Context(), d.DB); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"ALTER TABLE syncworker_relay_members DROP COLUMN instance",
		"ALTER TABLE syncworker_relay_leases DROP COLUMN instance",
		"DELETE FROM syncworker_schema_migrations WHERE version > 1",
	} {
		if _, err := d.DB.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s := &settings{}
	s.MySQL.DSN = d.DSN
	err := checkSchema(t.Context(), d.DB, s)
	if err == nil || !strings.Contains(err.Error(), "schema version 1") || !strings.Contains(err.Error(), "run 'syncworker migrate' first") {
		t.Fatalf("checkSchema on version 1: %v; want the version and to migrate first", err)
	}
	if code, out, errOut := runCLI(t, nil, "", "migrate", "--dsn", d.DSN); code != 0 || !strings.Contains(out, "applied migrations [2") {
		t.Fatalf("migrate: code %d, out %q, err %q", code, out, errOut)
	}
	if err := checkSchema(t.Context(), d.DB, s); err != nil {
		t.Fatalf("checkSchema after migrate: %v", err)
	}
}
