package subscriber

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"

	"github.com/syncworker/syncworker/outbox"
)

// versionState is a row's version record as the batch goes along.
type versionState struct {
	version uint64
	deleted bool
	changed bool // an event of this batch was applied: write the record back
}

type versionKey struct{ table, row string }

// HandleBatch applies row-sync events inside tx with the effect of calling Handle on each in
// order, in a few statements for the whole batch instead of four per event (it is the
// subscriber's Config.BatchHandler):
//
//  1. one INSERT IGNORE creates the missing version records (version 0) of every row the batch
//     touches; creating them first avoids the gap locks a locking read of a missing record
//     takes, which made parallel lanes adding new rows deadlock;
//  2. one SELECT ... FOR UPDATE per target table locks and reads them;
//  3. walking the events in order, an event not newer than its row's version (as stored, or
//     as set by an earlier event of the batch) is skipped and counted stale; the others become
//     multi-row statements: consecutive upserts of one table with the same columns share one
//     INSERT ... ON DUPLICATE KEY UPDATE (MySQL applies its rows in order, so two events of
//     one key in it take effect one after the other), consecutive deletes of one table one
//     DELETE; statements run in event order, so each key sees its events in order;
//  4. one INSERT ... ON DUPLICATE KEY UPDATE writes back the versions (tombstones for deletes).
//
// Any error fails the whole call: an invalid event (ErrPermanent) before anything was written,
// a database error after. The subscriber then applies the batch event by event with Handle,
// which attributes the failure to its event.
func (r *RowSync) HandleBatch(ctx context.Context, tx *sql.Tx, msgs []Message) error {
	events := make([]rowEvent, len(msgs))
	for i, msg := range msgs {
		ev, err := r.decode(ctx, tx, msg)
		if err != nil {
			return err
		}
		events[i] = ev
	}
	dialect, err := r.dialect(ctx, tx)
	if err != nil {
		return err
	}
	state, err := r.lockVersions(ctx, tx, events)
	if err != nil {
		return err
	}
	var run []*rowEvent // consecutive events sharing one statement
	runSig := ""
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		err := r.applyRun(ctx, tx, dialect, run)
		run, runSig = run[:0], ""
		return err
	}
	for i := range events {
		ev := &events[i]
		st := state[versionKey{ev.m.Target, ev.rowKey}]
		if st.version >= ev.change.Version {
			r.cfg.Metrics.StaleRowEvent(ev.m.Target)
			continue // stale: a newer (or the same) version is already applied
		}
		st.version, st.deleted, st.changed = ev.change.Version, ev.change.Op == outbox.RowOpDelete, true
		if sig := statementSignature(ev); sig != runSig {
			if err := flush(); err != nil {
				return err
			}
			runSig = sig
		}
		run = append(run, ev)
	}
	if err := flush(); err != nil {
		return err
	}
	return r.storeVersions(ctx, tx, dialect, state)
}

// lockVersions creates the missing version records of the rows events touch and reads them
// locked, in key order (the same order in every transaction).
func (r *RowSync) lockVersions(ctx context.Context, tx *sql.Tx, events []rowEvent) (map[versionKey]*versionState, error) {
	state := map[versionKey]*versionState{}
	var keys []versionKey
	for _, ev := range events {
		k := versionKey{ev.m.Target, ev.rowKey}
		if _, ok := state[k]; !ok {
			state[k] = &versionState{}
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].table != keys[j].table {
			return keys[i].table < keys[j].table
		}
		return keys[i].row < keys[j].row
	})
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k.table, k.row)
	}
	if _, err := tx.ExecContext(ctx, "INSERT IGNORE INTO "+r.versions+" (table_name, row_key, version, deleted) VALUES "+
		repeatList("(?, ?, 0, 0)", len(keys)), args...); err != nil {
		return nil, fmt.Errorf("row sync: create version records: %w", err)
	}
	for from := 0; from < len(keys); {
		to := from
		for to < len(keys) && keys[to].table == keys[from].table {
			to++
		}
		args := []any{keys[from].table}
		for _, k := range keys[from:to] {
			args = append(args, k.row)
		}
		if err := r.readVersions(ctx, tx, keys[from].table, to-from, args, state); err != nil {
			return nil, err
		}
		from = to
	}
	return state, nil
}

func (r *RowSync) readVersions(ctx context.Context, tx *sql.Tx, table string, n int, args []any, state map[versionKey]*versionState) error {
	rows, err := tx.QueryContext(ctx, "SELECT row_key, version, deleted FROM "+r.versions+
		" WHERE table_name = ? AND row_key IN ("+repeatList("?", n)+") FOR UPDATE", args...)
	if err != nil {
		return fmt.Errorf("row sync: read versions of %s: %w", table, err)
	}
	defer rows.Close()
	found := 0
	for rows.Next() {
		var key []byte
		var v versionState
		if err := rows.Scan(&key, &v.version, &v.deleted); err != nil {
			return fmt.Errorf("row sync: read versions of %s: %w", table, err)
		}
		if st, ok := state[versionKey{table, string(key)}]; ok {
			*st = v
			found++
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("row sync: read versions of %s: %w", table, err)
	}
	if found != n {
		return fmt.Errorf("row sync: read versions of %s: %d of %d version records found", table, found, n)
	}
	return nil
}

// statementSignature says which events can share one statement: same kind, same table, and
// for upserts the same columns.
func statementSignature(ev *rowEvent) string {
	if ev.change.Op == outbox.RowOpDelete {
		return "delete\x00" + ev.m.Target
	}
	return "upsert\x00" + ev.m.Target + "\x00" + strings.Join(upsertColumns(ev), "\x00")
}

// upsertColumns returns the lower-case names of the key and row columns of an upsert, sorted.
func upsertColumns(ev *rowEvent) []string {
	names := make([]string, 0, len(ev.change.Key)+len(ev.change.Row))
	seen := make(map[string]bool, cap(names))
	for _, m := range []map[string]any{ev.change.Key, ev.change.Row} {
		for name := range m {
			if lower := strings.ToLower(name); !seen[lower] {
				seen[lower] = true
				names = append(names, lower)
			}
		}
	}
	sort.Strings(names)
	return names
}

// value returns the event's value of a lower-case column, the key's taking precedence.
func (ev *rowEvent) value(lower string) any {
	for _, m := range []map[string]any{ev.change.Key, ev.change.Row} {
		for name, v := range m {
			if strings.ToLower(name) == lower {
				return sqlValue(v)
			}
		}
	}
	return nil
}

// applyRun runs one statement for events that share a statementSignature.
func (r *RowSync) applyRun(ctx context.Context, tx *sql.Tx, dialect upsertDialect, run []*rowEvent) error {
	first := run[0]
	target := outbox.QuoteIdentifier(first.m.Target)
	if first.change.Op == outbox.RowOpDelete {
		var quoted []string
		for _, k := range first.m.KeyColumns {
			quoted = append(quoted, outbox.QuoteIdentifier(first.cols[strings.ToLower(k)]))
		}
		tuple := "(" + repeatList("?", len(quoted)) + ")"
		args := make([]any, 0, len(run)*len(quoted))
		for _, ev := range run {
			for _, k := range ev.m.KeyColumns {
				args = append(args, sqlValue(ev.change.Key[k]))
			}
		}
		query := "DELETE FROM " + target + " WHERE (" + strings.Join(quoted, ", ") + ") IN (" + repeatList(tuple, len(run)) + ")"
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("row sync: delete from %s: %w", first.m.Target, err)
		}
		return nil
	}
	names := upsertColumns(first)
	isKey := map[string]bool{}
	for _, k := range first.m.KeyColumns {
		isKey[strings.ToLower(k)] = true
	}
	var quoted, updates []string
	for _, lower := range names {
		q := outbox.QuoteIdentifier(first.cols[lower])
		quoted = append(quoted, q)
		if !isKey[lower] {
			updates = append(updates, q+" = "+dialect.newValue(q))
		}
	}
	if len(updates) == 0 { // only key columns: the row exists, nothing to change
		q := outbox.QuoteIdentifier(first.cols[strings.ToLower(first.m.KeyColumns[0])])
		updates = append(updates, q+" = "+q)
	}
	args := make([]any, 0, len(run)*len(names))
	for _, ev := range run {
		for _, lower := range names {
			args = append(args, ev.value(lower))
		}
	}
	query := "INSERT INTO " + target + " (" + strings.Join(quoted, ", ") + ") VALUES " +
		repeatList("("+repeatList("?", len(names))+")", len(run)) + dialect.afterValues() +
		" ON DUPLICATE KEY UPDATE " + strings.Join(updates, ", ")
	if _, err := tx.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("row sync: upsert into %s: %w", first.m.Target, err)
	}
	return nil
}

// storeVersions writes back the version (and tombstone flag) of every row an event changed.
func (r *RowSync) storeVersions(ctx context.Context, tx *sql.Tx, dialect upsertDialect, state map[versionKey]*versionState) error {
	var args []any
	n := 0
	for k, st := range state {
		if st.changed {
			args = append(args, k.table, k.row, st.version, st.deleted)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+r.versions+" (table_name, row_key, version, deleted) VALUES "+
		repeatList("(?, ?, ?, ?)", n)+dialect.afterValues()+" ON DUPLICATE KEY UPDATE version = "+dialect.newValue("version")+
		", deleted = "+dialect.newValue("deleted"), args...); err != nil {
		return fmt.Errorf("row sync: record versions: %w", err)
	}
	return nil
}

// repeatList returns n copies of item joined by ", ".
func repeatList(item string, n int) string {
	if n <= 0 {
		return ""
	}
	return item + strings.Repeat(", "+item, n-1)
}
