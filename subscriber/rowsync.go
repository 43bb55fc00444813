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
	schemas map[string]*targetSchema // by target table
	upsert  *upsertDialect           // the server's; nil until the first batch asked it
}

type mappedTable struct {
	TableMapping
	allowed map[string]bool // lower-case allow-list, nil when every column is allowed
}

// NewRowSync checks cfg and returns the applier. Target schemas are read on first use and
// cached; an unknown column makes it read the schema again once before parking the event.
func NewRowSync(cfg RowSyncConfig) (*RowSync, error) {
	if cfg.VersionTable == "" {
		cfg.VersionTable = outbox.DefaultRowVersionTable
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NopMetrics{}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("subscriber: invalid row-sync config: %w", err)
	}
	r := &RowSync{cfg: cfg, bySource: map[string]*mappedTable{}, versions: outbox.QuoteIdentifier(cfg.VersionTable),
		schemas: map[string]*targetSchema{}}
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
		ts, err := r.schema(ctx, tx, m.Target, refreshed)
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

// targetSchema is what row sync knows of a target table, read from information_schema.
type targetSchema struct {
	cols  map[string]string // lower-case column name -> schema name
	fixed map[string]string // lower-case column name -> why events may not write it
}

// check returns what keeps an event naming these columns from being applied, or "".
func (ts *targetSchema) check(names []string, writes bool) string {
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

// schema returns the target's schema from information_schema, cached unless reload is set.
// Generated columns cannot be written: an event naming one is parked like one naming an
// unknown column, instead of failing in SQL (error 1906) through every retry tier.
func (r *RowSync) schema(ctx context.Context, tx *sql.Tx, table string, reload bool) (*targetSchema, error) {
	r.mu.Lock()
	ts, ok := r.schemas[table]
	r.mu.Unlock()
	if ok && !reload {
		return ts, nil
	}
	// GENERATION_EXPRESSION is NULL (MariaDB) or '' (MySQL) unless the column is generated;
	// EXTRA is not used for this: MySQL marks expression defaults DEFAULT_GENERATED.
	rows, err := tx.QueryContext(ctx, "SELECT COLUMN_NAME, COALESCE(GENERATION_EXPRESSION, '') FROM information_schema.COLUMNS"+
		" WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?", table)
	if err != nil {
		return nil, fmt.Errorf("row sync: read columns of %s: %w", table, err)
	}
	defer rows.Close()
	ts = &targetSchema{cols: map[string]string{}, fixed: map[string]string{}}
	for rows.Next() {
		var name, generation string
		if err := rows.Scan(&name, &generation); err != nil {
			return nil, fmt.Errorf("row sync: read columns of %s: %w", table, err)
		}
		lower := strings.ToLower(name)
		ts.cols[lower] = name
		if generation != "" {
			ts.fixed[lower] = fmt.Sprintf("column %s is generated; events cannot write it", name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("row sync: read columns of %s: %w", table, err)
	}
	if len(ts.cols) == 0 {
		// A missing target is a deployment problem, not a bad event: retry, don't park.
		return nil, fmt.Errorf("row sync: target table %q does not exist", table)
	}
	r.mu.Lock()
	r.schemas[table] = ts
	r.mu.Unlock()
	return ts, nil
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
