package outbox

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one embedded, versioned schema change.
type Migration struct {
	Version int
	Name    string
	sql     string
}

// Migrations lists the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("outbox: read embedded migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("outbox: migration file %q does not start with a positive version number", name)
		}
		body, err := migrationFiles.ReadFile(path.Join("migrations", name))
		if err != nil {
			return nil, fmt.Errorf("outbox: read migration %q: %w", name, err)
		}
		out = append(out, Migration{Version: version, Name: strings.TrimSuffix(name, ".sql"), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("outbox: two migrations share version %d", out[i].Version)
		}
	}
	return out, nil
}

// Migrate brings the schema with the default table names up to date. Running it again is a
// no-op, and concurrent runs (several pods starting at once) take turns on a named lock.
func Migrate(ctx context.Context, db *sql.DB) error {
	_, err := MigrateTables(ctx, db, Tables{})
	return err
}

// migrateLockTimeout bounds how long a run waits for a concurrent run to finish.
const migrateLockTimeout = 60 * time.Second

// MigrateTables is Migrate with custom table names. It returns the versions it applied.
func MigrateTables(ctx context.Context, db *sql.DB, tables Tables) ([]int, error) {
	tables = tables.WithDefaults()
	if err := tables.Validate(); err != nil {
		return nil, fmt.Errorf("outbox: migrate: %w", err)
	}
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	// DDL commits implicitly in MySQL, so one connection holds a named lock for the whole run
	// instead of a transaction. The lock is per database and migrations table.
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("outbox: migrate: connect: %w", err)
	}
	defer conn.Close()
	lockName := "syncworker.migrate:" + tables.Migrations
	var got sql.NullInt64
	err = conn.QueryRowContext(ctx, "SELECT GET_LOCK(LEFT(CONCAT(?, ':', IFNULL(DATABASE(), '')), 64), ?)",
		lockName, int(migrateLockTimeout/time.Second)).Scan(&got)
	if err != nil {
		return nil, fmt.Errorf("outbox: migrate: take lock: %w", err)
	}
	if !got.Valid || got.Int64 != 1 {
		return nil, fmt.Errorf("outbox: migrate: another migration held the lock for more than %s", migrateLockTimeout)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), //nolint:errcheck // closing the conn releases it too
		"SELECT RELEASE_LOCK(LEFT(CONCAT(?, ':', IFNULL(DATABASE(), '')), 64))", lockName)

	create := tables.expand(`CREATE TABLE IF NOT EXISTS {schema_migrations} (
  version    INT UNSIGNED   NOT NULL,
  name       VARBINARY(255) NOT NULL,
  applied_at DATETIME(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (version)
) ENGINE=InnoDB`)
	if _, err := conn.ExecContext(ctx, create); err != nil {
		return nil, fmt.Errorf("outbox: migrate: create %s: %w", tables.Migrations, err)
	}
	current, err := schemaVersion(ctx, conn, tables)
	if err != nil {
		return nil, err
	}
	var applied []int
	for _, m := range all {
		if m.Version <= current {
			continue
		}
		for i, stmt := range splitStatements(tables.expand(m.sql)) {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return applied, fmt.Errorf("outbox: migrate: %s, statement %d: %w", m.Name, i+1, err)
			}
		}
		if _, err := conn.ExecContext(ctx, tables.expand("INSERT INTO {schema_migrations} (version, name) VALUES (?, ?)"),
			m.Version, m.Name); err != nil {
			return applied, fmt.Errorf("outbox: migrate: record %s: %w", m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// SchemaVersion returns the highest applied migration version, 0 when none was applied.
func SchemaVersion(ctx context.Context, db *sql.DB, tables Tables) (int, error) {
	tables = tables.WithDefaults()
	if err := tables.Validate(); err != nil {
		return 0, err
	}
	return schemaVersion(ctx, db, tables)
}

func schemaVersion(ctx context.Context, q queryRower, tables Tables) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, tables.expand("SELECT IFNULL(MAX(version), 0) FROM {schema_migrations}")).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("outbox: read schema version from %s: %w", tables.Migrations, err)
	}
	return v, nil
}

// splitStatements splits a migration into statements at semicolons that end a line, after
// dropping comment lines. Migrations are ours, so they keep to that shape.
func splitStatements(sqlText string) []string {
	var kept []string
	for _, line := range strings.Split(sqlText, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		kept = append(kept, line)
	}
	var out []string
	for _, stmt := range strings.Split(strings.Join(kept, "\n"), ";\n") {
		stmt = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(stmt), ";"))
		if stmt != "" {
			out = append(out, stmt)
		}
	}
	return out
}
