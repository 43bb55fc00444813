package subscriber

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// upsertDialect says how a multi-row INSERT ... ON DUPLICATE KEY UPDATE names the values of the
// row it tried to insert: MySQL 8.0.19 and later take a row alias (VALUES (...) AS sw_new ...
// c = sw_new.c) and deprecate VALUES(c), with a warning on every statement and its removal
// announced; MariaDB has no row alias and keeps VALUES(c).
type upsertDialect struct{ rowAlias bool }

// newValue is the inserted row's value of the quoted column col, for the UPDATE part.
func (d upsertDialect) newValue(col string) string {
	if d.rowAlias {
		return "sw_new." + col
	}
	return "VALUES(" + col + ")"
}

// afterValues goes right after the VALUES list.
func (d upsertDialect) afterValues() string {
	if d.rowAlias {
		return " AS sw_new"
	}
	return ""
}

// dialectOf returns the dialect of a server from SELECT VERSION().
func dialectOf(version string) upsertDialect {
	if strings.Contains(strings.ToLower(version), "mariadb") {
		return upsertDialect{}
	}
	var major, minor, patch int
	fmt.Sscanf(version, "%d.%d.%d", &major, &minor, &patch) //nolint:errcheck // unparsable: zeros, the old form
	return upsertDialect{rowAlias: major > 8 || (major == 8 && (minor > 0 || patch >= 19))}
}

// dialect returns the server's dialect, asking it once per RowSync (all of a subscriber's
// transactions go to one server).
func (r *RowSync) dialect(ctx context.Context, tx *sql.Tx) (upsertDialect, error) {
	r.mu.Lock()
	known := r.upsert
	r.mu.Unlock()
	if known != nil {
		return *known, nil
	}
	var version string
	if err := tx.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return upsertDialect{}, fmt.Errorf("row sync: server version: %w", err)
	}
	d := dialectOf(version)
	r.mu.Lock()
	r.upsert = &d
	r.mu.Unlock()
	return d, nil
}
