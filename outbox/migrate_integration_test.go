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
