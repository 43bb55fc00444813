package outbox_test

import (
	"sync"
	"testing"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// schemaOf returns the CREATE TABLE text of every table in the database.
func schemaOf(t *testing.T, d *testenv.Database) map[string]string {
	t.Helper()
	rows, err := d.DB.QueryContext(t.Context(), "SHOW TABLES")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	rows.Close()
	out := map[string]string{}
	for _, n := range names {
		var name, ddl string
		if err := d.DB.QueryRowContext(t.Context(), "SHOW CREATE TABLE `"+n+"`").Scan(&name, &ddl); err != nil {
			t.Fatal(err)
		}
		out[n] = ddl
	}
	return out
}

func TestMigrateTwiceIsANoOp(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	applied, err := outbox.MigrateTables(t.Context(), d.DB, outbox.Tables{})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := outbox.Migrations()
	if len(applied) != len(all) {
		t.Fatalf("first run applied %v, want all %d migrations", applied, len(all))
	}
	before := schemaOf(t, d)
	for _, table := range []string{outbox.DefaultTable, outbox.DefaultDeadTable, outbox.DefaultLeaseTable,
		outbox.DefaultInboxTable, outbox.DefaultRowVersionTable, outbox.DefaultMigrationsTable} {
		if before[table] == "" {
			t.Fatalf("migration did not create %s", table)
		}
	}
	applied, err = outbox.MigrateTables(t.Context(), d.DB, outbox.Tables{})
	if err != nil || len(applied) != 0 {
		t.Fatalf("second run applied %v, err %v; want nothing", applied, err)
	}
	after := schemaOf(t, d)
	if len(after) != len(before) {
		t.Fatalf("second run changed the tables: %d before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("second run changed %s", k)
		}
	}
	v, err := outbox.SchemaVersion(t.Context(), d.DB, outbox.Tables{})
	if err != nil || v != all[len(all)-1].Version {
		t.Fatalf("SchemaVersion = %d, %v", v, err)
	}
}

func TestConcurrentMigrationsDoNotCollide(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	reference := testenv.NewDatabase(t)
	if err := outbox.Migrate(t.Context(), reference.DB); err != nil {
		t.Fatal(err)
	}
	const runs = 4
	var wg sync.WaitGroup
	errs := make([]error, runs)
	applied := make([][]int, runs)
	for i := 0; i < runs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = outbox.MigrateTables(t.Context(), d.DB, outbox.Tables{})
		}()
	}
	wg.Wait()
	total := 0
	for i := range errs {
		if errs[i] != nil {
			t.Fatalf("concurrent run %d: %v", i, errs[i])
		}
		total += len(applied[i])
	}
	all, _ := outbox.Migrations()
	if total != len(all) {
		t.Fatalf("concurrent runs applied %d migrations in all, want each once (%d)", total, len(all))
	}
	got, want := schemaOf(t, d), schemaOf(t, reference)
	if len(got) != len(want) {
		t.Fatalf("concurrent runs made %d tables, a single run %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("table %s differs from a single run's", k)
		}
	}
	var versions int
	d.DB.QueryRow("SELECT COUNT(*) FROM " + outbox.DefaultMigrationsTable).Scan(&versions)
	if versions != len(all) {
		t.Fatalf("%d version rows, want %d", versions, len(all))
	}
}

// A database at version 1 with relay rows in it is brought to the current version: the
// instance columns appear, empty in the existing rows. The migration is idempotent: run again
// after its version record was lost (as if interrupted), it changes nothing.
func TestMigrateAddsRelayInstancesToAnExistingDatabase(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	ctx := t.Context()
	if _, err := outbox.MigrateTables(ctx, d.DB, outbox.Tables{}); err != nil {
		t.Fatal(err)
	}
	want := schemaOf(t, d)
	// Back to version 1's relay tables, with rows a running version-1 relay wrote.
	for _, q := range []string{
		"ALTER TABLE syncworker_relay_members DROP COLUMN instance",
		"ALTER TABLE syncworker_relay_leases DROP COLUMN instance",
		"DELETE FROM syncworker_schema_migrations WHERE version > 1",
		"INSERT INTO syncworker_relay_members (lease_group, member, expires_at) VALUES ('g/2', 'pod-0', NOW(6) + INTERVAL 1 MINUTE)",
		"INSERT INTO syncworker_relay_leases (lease_group, partition_no, owner, token, expires_at) VALUES ('g/2', 0, 'pod-0', 7, NOW(6) + INTERVAL 1 MINUTE), ('g/2', 1, '', 0, NOW(6))",
	} {
		if _, err := d.DB.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	applied, err := outbox.MigrateTables(ctx, d.DB, outbox.Tables{})
	if err != nil || len(applied) != 1 || applied[0] != 2 {
		t.Fatalf("migrating a version-1 database applied %v, %v; want [2]", applied, err)
	}
	check := func() {
		t.Helper()
		got := schemaOf(t, d)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("table %s after the upgrade:\n%s\nwant, as a fresh install:\n%s", k, got[k], v)
			}
		}
		var member, instance string
		if err := d.DB.QueryRow("SELECT member, instance FROM syncworker_relay_members").Scan(&member, &instance); err != nil || member != "pod-0" || instance != "" {
			t.Errorf("member row after the upgrade: %q, %q, %v", member, instance, err)
		}
		var n int
		d.DB.QueryRow("SELECT COUNT(*) FROM syncworker_relay_leases WHERE instance = '' AND (owner = 'pod-0' AND token = 7 OR owner = '')").Scan(&n)
		if n != 2 {
			t.Errorf("%d of 2 lease rows kept with instance '' after the upgrade", n)
		}
	}
	check()
	if _, err := d.DB.ExecContext(ctx, "DELETE FROM syncworker_schema_migrations WHERE version = 2"); err != nil {
		t.Fatal(err)
	}
	if applied, err := outbox.MigrateTables(ctx, d.DB, outbox.Tables{}); err != nil || len(applied) != 1 {
		t.Fatalf("running migration 2 again: applied %v, %v", applied, err)
	}
	check()
}
