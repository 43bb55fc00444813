package subscriber

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"slices"
	"sort"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/syncworker/syncworker/outbox"
)

// TableMapping maps the table named in row-sync events to a table of the subscriber's database.
type TableMapping struct {
	// Source is the table name the events carry (outbox.RowChange.Table).
	Source string `yaml:"source"`
	// Target is the table to write. Default Source.
	Target string `yaml:"target"`
	// KeyColumns are the columns that identify a row; events must key rows by exactly these.
	// The target needs a primary or unique key on them. Required.
	KeyColumns []string `yaml:"key_columns"`
	// Columns, when set, is the allow-list of columns events may write (key columns are
	// always allowed). Default: every column of the target table.
	Columns []string `yaml:"columns"`
}

// RowSyncConfig configures the row-sync applier.
type RowSyncConfig struct {
	// Tables lists the mapped tables. Events for any other table are parked.
	Tables []TableMapping `yaml:"tables"`
	// VersionTable holds each row's last applied version and tombstones. Default
	// syncworker_row_versions (created by outbox.Migrate).
	VersionTable string `yaml:"version_table"`
	// Metrics receives StaleRowEvent. Default NopMetrics.
	Metrics Metrics `yaml:"-"`
	// Logger gets a warning when a target table is refused. Default zap.NewNop().
	Logger *zap.Logger `yaml:"-"`
}

// Validate returns every problem with the configuration at once.
func (c RowSyncConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.VersionTable != "" {
		if err := outbox.ValidateIdentifier(c.VersionTable); err != nil {
			bad("version_table: %w", err)
		}
	}
	sources := map[string]bool{}
	for i, m := range c.Tables {
		at := fmt.Sprintf("tables[%d]", i)
		if err := outbox.ValidateIdentifier(m.Source); err != nil {
			bad("%s.source: %w", at, err)
		} else if sources[m.Source] {
			bad("%s.source: %q is mapped twice", at, m.Source)
		}
		sources[m.Source] = true
		if m.Target != "" {
			if err := outbox.ValidateIdentifier(m.Target); err != nil {
				bad("%s.target: %w", at, err)
			}
		}
		if len(m.KeyColumns) == 0 {
			bad("%s.key_columns: at least one column is required", at)
		}
		for _, col := range append(slices.Clone(m.KeyColumns), m.Columns...) {
			if err := outbox.ValidateIdentifier(col); err != nil {
				bad("%s: column: %w", at, err)
			}
		}
	}
	return errors.Join(errs...)
}

// RowSync applies row-sync events (outbox.RowUpsert / RowDelete) to mapped tables. Its Handle
// method is a Handler. An event is applied only if its version is newer than the row's stored
// version; a delete leaves a tombstone version. Every identifier put into SQL is a configured
// name or a column name read from the target table's schema, quoted; event values travel as
// arguments only. Invalid events fail with ErrPermanent (they are parked with the reason).
type RowSync struct {
	cfg      RowSyncConfig
	bySource map[string]*mappedTable
	versions string // quoted version table

	mu      sync.Mutex
	schemas map[*mappedTable]*targetSchema
	upsert  *upsertDialect // the server's; nil until the first batch asked it
}

type mappedTable struct {
	TableMapping
	allowed map[string]bool // lower-case allow-list, nil when every column is allowed
}

// NewRowSync checks cfg and returns the applier. Target schemas are read on first use and
// cached; an event the cached schema refuses (unknown or generated column, refused table)
// makes it read the schema again once before parking the event.
func NewRowSync(cfg RowSyncConfig) (*RowSync, error) {
	if cfg.VersionTable == "" {
		cfg.VersionTable = outbox.DefaultRowVersionTable
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NopMetrics{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("subscriber: invalid row-sync config: %w", err)
	}
	r := &RowSync{cfg: cfg, bySource: map[string]*mappedTable{}, versions: outbox.QuoteIdentifier(cfg.VersionTable),
		schemas: map[*mappedTable]*targetSchema{}}
	for _, m := range cfg.Tables {
		if m.Target == "" {
			m.Target = m.Source
		}
		mt := &mappedTable{TableMapping: m}
		if len(m.Columns) > 0 {
			mt.allowed = map[string]bool{}
			for _, c := range append(slices.Clone(m.Columns), m.KeyColumns...) {
				mt.allowed[strings.ToLower(c)] = true
			}
		}
		r.bySource[m.Source] = mt
	}
	return r, nil
}

func permanent(format string, args ...any) error {
	return fmt.Errorf("row sync: %s: %w", fmt.Sprintf(format, args...), ErrPermanent)
}

// Handle applies one row-sync event inside tx: HandleBatch of one message.
func (r *RowSync) Handle(ctx context.Context, tx *sql.Tx, msg Message) error {
	return r.HandleBatch(ctx, tx, []Message{msg})
}

// rowEvent is one checked row-sync event with its target's schema column names.
type rowEvent struct {
	m      *mappedTable
	change outbox.RowChange
	rowKey string            // canonical key text, the version record's row_key
	cols   map[string]string // lower-case name -> schema name
}

// decode checks msg and resolves its columns; every failure of the event itself is permanent.
func (r *RowSync) decode(ctx context.Context, tx *sql.Tx, msg Message) (rowEvent, error) {
	if msg.Type != outbox.EventTypeRowUpsert && msg.Type != outbox.EventTypeRowDelete {
		return rowEvent{}, permanent("event type %q is not a row-sync event", msg.Type)
	}
	if msg.ContentType != "" {
		if mt, _, err := mime.ParseMediaType(msg.ContentType); err != nil || mt != outbox.DefaultContentType {
			return rowEvent{}, permanent("content type %q is not %s", msg.ContentType, outbox.DefaultContentType)
		}
	}
	change, err := outbox.DecodeRowChange(msg.Payload)
	if err != nil {
		return rowEvent{}, permanent("%v", err)
	}
	if (change.Op == outbox.RowOpDelete) != (msg.Type == outbox.EventTypeRowDelete) {
		return rowEvent{}, permanent("op %q does not match event type %q", change.Op, msg.Type)
	}
	m, ok := r.bySource[change.Table]
	if !ok {
		return rowEvent{}, permanent("table %q is not mapped", change.Table)
	}
	if err := sameColumns(change.Key, m.KeyColumns); err != nil {
		return rowEvent{}, permanent("table %q: %v", change.Table, err)
	}
	cols, err := r.resolveColumns(ctx, tx, m, change)
	if err != nil {
		return rowEvent{}, err
	}
	rowKey, _ := change.KeyString() // DecodeRowChange checked it
	return rowEvent{m: m, change: change, rowKey: rowKey, cols: cols}, nil
}

// sameColumns checks that key names exactly the configured key columns.
func sameColumns(key map[string]any, want []string) error {
	if len(key) != len(want) {
		return fmt.Errorf("key has %d columns, the mapping %d (%s)", len(key), len(want), strings.Join(want, ", "))
	}
	for _, k := range want {
		if _, ok := key[k]; !ok {
			return fmt.Errorf("key lacks column %q", k)
		}
	}
	return nil
}

// resolveColumns checks every column the event names against the allow-list and the target's
// schema, and returns the schema's names by lower-case name.
func (r *RowSync) resolveColumns(ctx context.Context, tx *sql.Tx, m *mappedTable, change outbox.RowChange) (map[string]string, error) {
	var names []string
	for n := range change.Key {
		names = append(names, n)
	}
	for n := range change.Row {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if m.allowed != nil && !m.allowed[strings.ToLower(n)] {
			return nil, permanent("table %q: column %q is not in the mapping's allow-list", change.Table, n)
		}
	}
	for refreshed := false; ; refreshed = true {
		ts, err := r.schema(ctx, tx, m, refreshed)
		if err != nil {
			return nil, err
		}
		problem := ts.check(names, change.Op == outbox.RowOpUpsert)
		if problem == "" {
			return ts.cols, nil
		}
		if refreshed {
			return nil, permanent("target table %q: %s", m.Target, problem)
		}
	}
}

// targetSchema is what row sync knows of a mapping's target table, read from
// information_schema.
type targetSchema struct {
	cols  map[string]string // lower-case column name -> schema name
	fixed map[string]string // lower-case column name -> why upserts may not write it
	// refused says why no event of the mapping may be applied to the table; "" if they may.
	refused string
}

// check returns what keeps an event naming these columns from being applied, or "".
func (ts *targetSchema) check(names []string, writes bool) string {
	if ts.refused != "" {
		return ts.refused
	}
	var missing []string
	for _, n := range names {
		if _, ok := ts.cols[strings.ToLower(n)]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return "has no column(s) " + strings.Join(missing, ", ")
	}
	if writes { // a delete only reads its key columns
		for _, n := range names {
			if why, ok := ts.fixed[strings.ToLower(n)]; ok {
				return why
			}
		}
	}
	return ""
}

// uniqueIndex is a unique index of a target table: its columns in lower case ("" for an
// expression part) and whether each is whole (not a prefix).
type uniqueIndex struct {
	name  string
	cols  []string
	whole []bool
}

// schema returns the mapping's target schema from information_schema, cached unless reload is
// set. Generated columns cannot be written: an upsert naming one is parked like one naming an
// unknown column, instead of failing in SQL (error 1906) through every retry tier. The table
// is refused (see refusal) when an upsert could change another row than its key's.
func (r *RowSync) schema(ctx context.Context, tx *sql.Tx, m *mappedTable, reload bool) (*targetSchema, error) {
	r.mu.Lock()
	old, ok := r.schemas[m]
	r.mu.Unlock()
	if ok && !reload {
		return old, nil
	}
	table := m.Target
	ts := &targetSchema{cols: map[string]string{}, fixed: map[string]string{}}
	autoIncrement := ""
	// GENERATION_EXPRESSION is NULL (MariaDB) or '' (MySQL) unless the column is generated;
	// EXTRA is not used for this: MySQL marks expression defaults DEFAULT_GENERATED.
	err := queryRows(ctx, tx, "SELECT COLUMN_NAME, COALESCE(GENERATION_EXPRESSION, ''), EXTRA FROM information_schema.COLUMNS"+
		" WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?", []any{table}, func(rows *sql.Rows) error {
		var name, generation, extra string
		if err := rows.Scan(&name, &generation, &extra); err != nil {
			return err
		}
		lower := strings.ToLower(name)
		ts.cols[lower] = name
		if generation != "" {
			ts.fixed[lower] = fmt.Sprintf("column %s is generated; events cannot write it", name)
		}
		if strings.Contains(strings.ToLower(extra), "auto_increment") {
			autoIncrement = lower
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("row sync: read columns of %s: %w", table, err)
	}
	if len(ts.cols) == 0 {
		// A missing target is a deployment problem, not a bad event: retry, don't park.
		return nil, fmt.Errorf("row sync: target table %q does not exist", table)
	}
	var uniques []uniqueIndex
	err = queryRows(ctx, tx, "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS"+
		" WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
		[]any{table}, func(rows *sql.Rows) error {
			var name string
			var col sql.NullString // NULL for a functional key part (MySQL)
			var subPart sql.NullInt64
			if err := rows.Scan(&name, &col, &subPart); err != nil {
				return err
			}
			if len(uniques) == 0 || uniques[len(uniques)-1].name != name {
				uniques = append(uniques, uniqueIndex{name: name})
			}
			u := &uniques[len(uniques)-1]
			u.cols = append(u.cols, strings.ToLower(col.String))
			u.whole = append(u.whole, col.Valid && !subPart.Valid)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("row sync: read unique keys of %s: %w", table, err)
	}
	ts.refused = refusal(m.KeyColumns, uniques, autoIncrement, ts)
	r.mu.Lock()
	r.schemas[m] = ts
	r.mu.Unlock()
	if ts.refused != "" && (old == nil || old.refused != ts.refused) {
		r.cfg.Logger.Warn("row sync: target table refused; its events are parked until it is fixed",
			zap.String("source", m.Source), zap.String("target", table), zap.String("reason", ts.refused))
	}
	return ts, nil
}

// refusal says why upserts of a mapping could change another row than their key's, or "".
// INSERT ... ON DUPLICATE KEY UPDATE updates the row it conflicts with on any unique key, so
// the target needs a unique key on exactly the key columns, and no other unique key an event
// could conflict on. Harmless are an index holding every key column whole (a conflict on it is
// a conflict on the key, the same row) and one holding an AUTO_INCREMENT column that is not a
// key column: row sync leaves that column to the server (events may not write it, see fixed),
// so an insert always gets a new value there.
func refusal(keyColumns []string, uniques []uniqueIndex, autoIncrement string, ts *targetSchema) string {
	isKey := map[string]bool{}
	for _, k := range keyColumns {
		isKey[strings.ToLower(k)] = true
	}
	hasKeyIndex := false
	var others []string
	for _, u := range uniques {
		keyParts, autoInc := 0, false
		for i, c := range u.cols {
			switch {
			case u.whole[i] && isKey[c]:
				keyParts++
			case u.whole[i] && c == autoIncrement:
				autoInc = true
			}
		}
		switch {
		case keyParts == len(isKey) && len(u.cols) == len(isKey):
			hasKeyIndex = true
		case keyParts == len(isKey):
		case autoInc:
			ts.fixed[autoIncrement] = fmt.Sprintf("column %s is AUTO_INCREMENT in unique key %s, which is not the key: "+
				"row sync leaves it to the server, events cannot write it", ts.cols[autoIncrement], u.name)
		default:
			others = append(others, fmt.Sprintf("%s (%s)", u.name, indexColumns(u, ts)))
		}
	}
	keys := strings.Join(keyColumns, ", ")
	if !hasKeyIndex {
		return fmt.Sprintf("cannot be row-synced: it has no primary or unique key on exactly the key columns (%s)", keys)
	}
	if len(others) > 0 {
		return fmt.Sprintf("cannot be row-synced: unique key %s is not on the key columns (%s), so an upsert "+
			"conflicting on it would overwrite another row; make it a non-unique index in the replica",
			strings.Join(others, ", "), keys)
	}
	return ""
}

// indexColumns lists an index's parts as the schema names them.
func indexColumns(u uniqueIndex, ts *targetSchema) string {
	parts := make([]string, len(u.cols))
	for i, c := range u.cols {
		switch {
		case c == "":
			parts[i] = "an expression"
		case !u.whole[i]:
			parts[i] = ts.cols[c] + " prefix"
		default:
			parts[i] = ts.cols[c]
		}
	}
	return strings.Join(parts, ", ")
}

// queryRows runs query and calls scan for each row.
func queryRows(ctx context.Context, tx *sql.Tx, query string, args []any, scan func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// sqlValue turns a decoded JSON value into a query argument: numbers keep their exact text,
// objects and arrays become their JSON text (for JSON columns).
func sqlValue(v any) any {
	switch t := v.(type) {
	case nil, string, bool:
		return t
	case json.Number:
		return string(t)
	default:
		b, _ := json.Marshal(t)
		return string(b)
	}
}
