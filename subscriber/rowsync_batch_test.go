package subscriber

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// TestRowSyncBatchMatchesOneByOne applies the same random stream of row-sync events (upserts
// with different column sets, deletes, repeated and stale versions, several events of one key
// in a batch) once with HandleBatch in batches and once with Handle event by event, and checks
// that both leave the same rows, version records and stale count.
func TestRowSyncBatchMatchesOneByOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(7, seed))
	var msgs []Message
	for i := 0; i < 400; i++ {
		id, v := rng.IntN(12), uint64(rng.IntN(30)+1)
		var m outbox.Message
		var err error
		switch rng.IntN(4) {
		case 0:
			m, err = outbox.RowDelete("orders", map[string]any{"id": id}, v)
		case 1:
			m, err = outbox.RowUpsert("orders", map[string]any{"id": id}, map[string]any{"status": fmt.Sprint("p", i)}, v)
		default:
			m, err = outbox.RowUpsert("orders", map[string]any{"id": id}, map[string]any{"status": fmt.Sprint("s", i), "v": i}, v)
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, Message{ID: outbox.NewID(), Type: m.Type, Payload: m.Payload})
	}
	apply := func(batch bool) (string, int) {
		db := testenv.NewDatabase(t).DB
		if err := outbox.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`CREATE TABLE replica_orders (id BIGINT NOT NULL PRIMARY KEY,
			status VARCHAR(20) NOT NULL DEFAULT '', v BIGINT NOT NULL DEFAULT 0)`); err != nil {
			t.Fatal(err)
		}
		metrics := &countingMetrics{}
		rs, err := NewRowSync(RowSyncConfig{Metrics: metrics, Tables: []TableMapping{{
			Source: "orders", Target: "replica_orders", KeyColumns: []string{"id"}}}})
		if err != nil {
			t.Fatal(err)
		}
		for from := 0; from < len(msgs); from += 25 {
			chunk := msgs[from:min(from+25, len(msgs))]
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if batch {
				err = rs.HandleBatch(ctx, tx, chunk)
			} else {
				for _, m := range chunk {
					if err = rs.Handle(ctx, tx, m); err != nil {
						break
					}
				}
			}
			if err != nil {
				t.Fatalf("batch=%v: %v", batch, err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		return dumpRows(t, db), metrics.stale
	}
	batched, batchedStale := apply(true)
	single, singleStale := apply(false)
	if batched != single || batchedStale != singleStale {
		t.Fatalf("HandleBatch left\n%s(%d stale)\nHandle one by one left\n%s(%d stale)", batched, batchedStale, single, singleStale)
	}
	if batchedStale == 0 {
		t.Fatal("the stream had no stale event; the test does not exercise the version guard")
	}
}

// dumpRows renders the replica table and the version records in key order.
func dumpRows(t *testing.T, db *sql.DB) string {
	t.Helper()
	out := ""
	for _, q := range []string{"SELECT CONCAT_WS(' ', id, status, v) FROM replica_orders ORDER BY id",
		"SELECT CONCAT_WS(' ', table_name, row_key, version, deleted) FROM syncworker_row_versions ORDER BY row_key"} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			out += line + "\n"
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

// A batch with one invalid event fails as a whole with ErrPermanent, so the subscriber can
// fall back to applying it event by event; the batch writes nothing before it checked them all.
func TestRowSyncBatchFailsWholeOnBadEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDatabase(t).DB
	if err := outbox.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE replica_orders (id BIGINT NOT NULL PRIMARY KEY, status VARCHAR(20) NOT NULL DEFAULT '')`); err != nil {
		t.Fatal(err)
	}
	rs, err := NewRowSync(RowSyncConfig{Tables: []TableMapping{{Source: "orders", Target: "replica_orders", KeyColumns: []string{"id"}}}})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := outbox.RowUpsert("orders", map[string]any{"id": 1}, map[string]any{"status": "ok"}, 1)
	bad, _ := outbox.RowUpsert("customers", map[string]any{"id": 1}, map[string]any{"status": "x"}, 1)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // test cleanup
	err = rs.HandleBatch(ctx, tx, []Message{{ID: "a", Type: good.Type, Payload: good.Payload}, {ID: "b", Type: bad.Type, Payload: bad.Payload}})
	if !errors.Is(err, ErrPermanent) {
		t.Fatalf("HandleBatch with an unmapped table: %v, want ErrPermanent", err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM replica_orders").Scan(&n); err != nil || n != 0 {
		t.Fatalf("replica_orders holds %d rows (%v) after the failed batch, want 0", n, err)
	}
}
