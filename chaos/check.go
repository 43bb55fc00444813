// Package chaos holds the schema and the end-state checks of the chaos test (chaos_test.go,
// build tag chaos): producers write row changes and events to a source database, relays and
// consumers run as processes under injected faults, and Check compares the end state.
package chaos

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/syncworker/syncworker/internal/verify"
	"github.com/syncworker/syncworker/outbox"
)

// SourceSchema is created in the producers' database next to the outbox tables. items is
// the business table replicated by row sync (rows are inserted, updated and deleted);
// item_versions numbers each item's changes, deletes included; produced_events commits in the same transaction
// as each event, so it is the truth of which events committed, whatever a producer's
// client saw (a connection killed during COMMIT leaves the client unsure).
var SourceSchema = []string{
	"CREATE TABLE items (id BIGINT PRIMARY KEY, val VARCHAR(64) NOT NULL)",
	"CREATE TABLE item_versions (id BIGINT PRIMARY KEY, version BIGINT NOT NULL)",
	"CREATE TABLE produced_events (event_id VARCHAR(64) PRIMARY KEY, item_id BIGINT NOT NULL)",
}

// ReplicaSchema is created in the subscriber database next to the inbox tables. event_log
// gets one row per applied event (row sync keyed by the event id). The triggers append a row
// to event_applies for every write to event_log that commits, so an event whose effect was
// applied twice (a second insert, or an update of its row) leaves two rows there: the count
// does not depend on the inbox or the version guard being right.
var ReplicaSchema = []string{
	"CREATE TABLE items (id BIGINT PRIMARY KEY, val VARCHAR(64) NOT NULL)",
	"CREATE TABLE event_log (event_id VARCHAR(64) PRIMARY KEY, item_id BIGINT NOT NULL)",
	"CREATE TABLE event_applies (n BIGINT AUTO_INCREMENT PRIMARY KEY, event_id VARCHAR(64) NOT NULL, KEY (event_id))",
	"CREATE TRIGGER event_log_ins AFTER INSERT ON event_log FOR EACH ROW INSERT INTO event_applies (event_id) VALUES (NEW.event_id)",
	"CREATE TRIGGER event_log_upd AFTER UPDATE ON event_log FOR EACH ROW INSERT INTO event_applies (event_id) VALUES (NEW.event_id)",
}

// Create runs stmts on db.
func Create(ctx context.Context, db *sql.DB, stmts []string) error {
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// Result is the end state compared.
type Result struct {
	Events        int // committed events (rows of produced_events)
	Lost          int // committed events with no row in the replica's event_log
	DoubleApplied int // extra applications of events' effects (event_applies rows beyond one per event)
	Phantom       int // event_log rows of events that never committed (rolled-back transactions)
	Drift         int // item ids whose replica row differs from the source row, or exists on one side only
	Outbox        int // rows still in the source's outbox
	Dead          int // rows in the source's dead table
}

// OK is true when nothing was lost, doubled, invented or left different.
func (r Result) OK() bool {
	return r.Lost == 0 && r.DoubleApplied == 0 && r.Phantom == 0 && r.Drift == 0
}

// Check compares source database src and replica database rep, both on the server db is
// connected to. Every query is one bounded statement over the test's own tables.
func Check(ctx context.Context, db *sql.DB, src, rep string) (Result, error) {
	s, r := outbox.QuoteIdentifier(src), outbox.QuoteIdentifier(rep)
	var res Result
	queries := []struct {
		dst *int
		q   string
	}{
		{&res.Events, "SELECT COUNT(*) FROM " + s + ".produced_events"},
		{&res.Lost, "SELECT COUNT(*) FROM " + s + ".produced_events p LEFT JOIN " + r + ".event_log e ON e.event_id = p.event_id WHERE e.event_id IS NULL"},
		{&res.DoubleApplied, "SELECT COUNT(*) - COUNT(DISTINCT event_id) FROM " + r + ".event_applies"},
		{&res.Phantom, "SELECT COUNT(*) FROM " + r + ".event_log e LEFT JOIN " + s + ".produced_events p ON p.event_id = e.event_id WHERE p.event_id IS NULL"},
		{&res.Drift, "SELECT (SELECT COUNT(*) FROM " + s + ".items a LEFT JOIN " + r + ".items b ON b.id = a.id WHERE b.id IS NULL OR b.val <> a.val)" +
			" + (SELECT COUNT(*) FROM " + r + ".items b LEFT JOIN " + s + ".items a ON a.id = b.id WHERE a.id IS NULL)"},
		{&res.Outbox, "SELECT COUNT(*) FROM " + s + ".syncworker_outbox"},
		{&res.Dead, "SELECT COUNT(*) FROM " + s + ".syncworker_outbox_dead"},
	}
	for _, q := range queries {
		if err := db.QueryRowContext(ctx, q.q).Scan(q.dst); err != nil {
			return res, fmt.Errorf("%s: %w", q.q, err)
		}
	}
	return res, nil
}

// Verified is what the verify package finds comparing the source with the replica.
type Verified struct {
	Items  *verify.Report // items against the replica's items: the row-sync replica itself
	Events *verify.Report // produced_events against event_log: missing = lost, extra = phantom
}

// Drift is the number of item rows that differ, are missing or extra in the replica.
func (v Verified) Drift() int64 { return v.Items.Differing + v.Items.Missing + v.Items.Extra }

// Verify runs the verify package (what `syncworker verify` runs) over both table pairs.
func Verify(ctx context.Context, src, rep *sql.DB) (Verified, error) {
	var v Verified
	var err error
	v.Items, err = verify.Run(ctx, verify.Config{Source: src, Replica: rep, SourceTable: "items",
		KeyColumns: []string{"id"}, Columns: []string{"val"}})
	if err != nil {
		return v, fmt.Errorf("verify items: %w", err)
	}
	v.Events, err = verify.Run(ctx, verify.Config{Source: src, Replica: rep, SourceTable: "produced_events",
		ReplicaTable: "event_log", KeyColumns: []string{"event_id"}, Columns: []string{"item_id"}})
	if err != nil {
		return v, fmt.Errorf("verify events: %w", err)
	}
	return v, nil
}
