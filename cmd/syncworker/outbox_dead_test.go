package main

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

func TestOutboxDeadCommands(t *testing.T) {
	db := testenv.NewDatabase(t)
	ctx := context.Background()
	if err := outbox.Migrate(ctx, db.DB); err != nil {
		t.Fatal(err)
	}
	makeDead(t, db.DB, "dead-1", "dead-2")

	code, out, errOut := runCLI(t, nil, "", "outbox", "dead", "list", "--dsn", db.DSN)
	if code != 0 || !strings.Contains(out, "dead-1") || !strings.Contains(out, "NO_ROUTE") || !strings.Contains(out, "order.updated") {
		t.Fatalf("dead list = %d\n%s%s", code, out, errOut)
	}
	if code, _, _ := runCLI(t, nil, "", "outbox", "dead", "retry", "--dsn", db.DSN); code == 0 {
		t.Errorf("dead retry without ids or --all succeeded")
	}
	deadStore, _ := outbox.NewDeadStore(db.DB, outbox.Tables{})
	list, _ := deadStore.List(ctx, 0, 10)
	code, out, errOut = runCLI(t, nil, "", "outbox", "dead", "retry", "--dsn", db.DSN, "--", strconv.FormatInt(list[0].ID, 10))
	if code != 0 || !strings.Contains(out, "1 dead messages put back") {
		t.Fatalf("dead retry = %d\n%s%s", code, out, errOut)
	}
	var attempts int
	if err := db.DB.QueryRow("SELECT attempts FROM syncworker_outbox WHERE message_id = 'dead-1'").Scan(&attempts); err != nil || attempts != 0 {
		t.Errorf("retried row: attempts %d, %v; want back in the outbox with 0 attempts", attempts, err)
	}

	code, out, _ = runCLI(t, nil, "no\n", "outbox", "dead", "purge", "--dsn", db.DSN, "--all")
	if code == 0 || !strings.Contains(out, "all 1 dead messages") {
		t.Errorf("purge answered no = %d\n%s", code, out)
	}
	if n, _ := deadStore.Count(ctx); n != 1 {
		t.Fatalf("%d dead messages after a refused purge, want 1", n)
	}
	code, out, errOut = runCLI(t, nil, "yes\n", "outbox", "dead", "purge", "--dsn", db.DSN, "--all")
	if code != 0 || !strings.Contains(out, "1 dead messages purged") {
		t.Errorf("purge = %d\n%s%s", code, out, errOut)
	}
	if n, _ := deadStore.Count(ctx); n != 0 {
		t.Errorf("%d dead messages after purge, want 0", n)
	}
	if code, out, _ := runCLI(t, nil, "", "outbox", "dead", "list", "--dsn", db.DSN); code != 0 || !strings.Contains(out, "no dead messages") {
		t.Errorf("empty dead list = %d\n%s", code, out)
	}
}

// makeDead writes messages with the given ids and moves them to the dead table, as the relay
// does after their last failed attempt.
func makeDead(t *testing.T, db *sql.DB, ids ...string) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if err := outbox.Write(ctx, tx, outbox.Message{ID: id, Exchange: "orders", RoutingKey: []string{"order.created", "order.updated"}[i%2],
			Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	store, _ := outbox.NewRelayStore(db, outbox.Tables{})
	res, err := store.Fetch(ctx, outbox.FetchRequest{Lo: 0, Hi: ^uint32(0), Limit: len(ids) + 10})
	if err != nil || len(res.Rows) != len(ids) {
		t.Fatalf("fetch: %v, %d rows", err, len(res.Rows))
	}
	var failures []outbox.Failure
	for _, r := range res.Rows {
		failures = append(failures, outbox.Failure{ID: r.ID, Error: "returned by the broker: 312 NO_ROUTE", Dead: true})
	}
	if err := store.RecordFailures(ctx, failures); err != nil {
		t.Fatal(err)
	}
}

// Ids and flags may come in any order (the documented synopsis puts --yes after the ids), and
// --limit 0 lists everything, as dlq's --limit 0 does.
func TestOutboxDeadFlagsAfterIDsAndLimitZero(t *testing.T) {
	t.Parallel()
	db := testenv.NewDatabase(t)
	ctx := context.Background()
	if err := outbox.Migrate(ctx, db.DB); err != nil {
		t.Fatal(err)
	}
	makeDead(t, db.DB, "d-1", "d-2", "d-3")
	code, out, errOut := runCLI(t, nil, "", "outbox", "dead", "list", "--dsn", db.DSN, "--limit", "0")
	if code != 0 || !strings.Contains(out, "d-1") || !strings.Contains(out, "d-3") {
		t.Fatalf("dead list --limit 0 = %d\n%s%s", code, out, errOut)
	}
	deadStore, _ := outbox.NewDeadStore(db.DB, outbox.Tables{})
	list, _ := deadStore.List(ctx, 0, 10)
	first, second := strconv.FormatInt(list[0].ID, 10), strconv.FormatInt(list[1].ID, 10)
	code, out, errOut = runCLI(t, nil, "", "outbox", "dead", "purge", "--dsn", db.DSN, first, "--yes")
	if code != 0 || !strings.Contains(out, "1 dead messages purged") {
		t.Fatalf("dead purge --dsn D ID --yes = %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "", "outbox", "dead", "retry", second, "--dsn", db.DSN)
	if code != 0 || !strings.Contains(out, "1 dead messages put back") {
		t.Fatalf("dead retry ID --dsn D = %d\n%s%s", code, out, errOut)
	}
	if n, _ := deadStore.Count(ctx); n != 1 {
		t.Errorf("%d dead messages left, want 1", n)
	}
}
