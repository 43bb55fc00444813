package chaos

import (
	"context"
	"testing"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/subscriber"
)

// The detectors of the chaos test must see what they claim to: an event applied twice
// (here by wiping the version guard between two applies of one message), an event that never
// arrived, a replica row that differs, and an applied event that never committed.
func TestCheckDetectsDoubleApplyLossDriftAndPhantoms(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, rep := newSourceAndReplica(t)
	rs, err := subscriber.NewRowSync(subscriber.RowSyncConfig{Tables: []subscriber.TableMapping{
		{Source: "event_log", KeyColumns: []string{"event_id"}},
		{Source: "items", KeyColumns: []string{"id"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	apply := func(m outbox.Message) {
		t.Helper()
		tx, err := rep.DB.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := rs.Handle(ctx, tx, subscriber.Message{ID: m.ID, Type: m.Type, Payload: m.Payload}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	check := func() Result {
		t.Helper()
		r, err := Check(ctx, src.DB, src.Name, rep.Name)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	exec := func(db *testenv.Database, q string, args ...any) {
		t.Helper()
		if _, err := db.DB.ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}

	exec(src, "INSERT INTO produced_events VALUES ('e1', 1), ('e2', 1)")
	exec(src, "INSERT INTO items VALUES (1, 'a')")
	ev, _ := outbox.RowUpsert("event_log", map[string]any{"event_id": "e1"}, map[string]any{"item_id": 1}, 1)
	item, _ := outbox.RowUpsert("items", map[string]any{"id": 1}, map[string]any{"val": "a"}, 1)
	apply(ev)
	apply(item)
	if r := check(); r.Events != 2 || r.Lost != 1 || r.DoubleApplied != 0 || r.Drift != 0 || r.Phantom != 0 {
		t.Fatalf("after one apply of e1: %+v, want events=2 lost=1 (e2) and nothing else", r)
	}
	apply(ev) // redelivery: the version guard skips it
	if r := check(); r.DoubleApplied != 0 {
		t.Fatalf("a skipped redelivery counted as double apply: %+v", r)
	}
	exec(rep, "DELETE FROM syncworker_row_versions")
	apply(ev) // the guard is gone: the effect is written a second time
	if r := check(); r.DoubleApplied != 1 {
		t.Fatalf("double apply not detected: %+v", r)
	}
	exec(rep, "UPDATE items SET val = 'b' WHERE id = 1")
	exec(rep, "INSERT INTO items VALUES (2, 'x')")
	exec(rep, "INSERT INTO event_log VALUES ('rolled-back', 1)")
	if r := check(); r.Drift != 2 || r.Phantom != 1 || r.OK() {
		t.Fatalf("drift/phantom not detected: %+v, want drift=2 phantom=1", r)
	}
	v, err := Verify(ctx, src.DB, rep.DB)
	if err != nil {
		t.Fatal(err)
	}
	if v.Drift() != 2 || v.Events.Missing != 1 || v.Events.Extra != 1 {
		t.Fatalf("verify: drift %d, events missing %d extra %d; want 2, 1 (e2), 1 (rolled-back)", v.Drift(), v.Events.Missing, v.Events.Extra)
	}
}

// newSourceAndReplica makes the chaos test's two databases, migrated, with their schemas.
func newSourceAndReplica(t *testing.T) (src, rep *testenv.Database) {
	t.Helper()
	src, rep = testenv.NewDatabase(t), testenv.NewDatabase(t)
	for _, d := range []struct {
		db     *testenv.Database
		schema []string
	}{{src, SourceSchema}, {rep, ReplicaSchema}} {
		if err := outbox.Migrate(context.Background(), d.db.DB); err != nil {
			t.Fatal(err)
		}
		if err := Create(context.Background(), d.db.DB, d.schema); err != nil {
			t.Fatal(err)
		}
	}
	return src, rep
}
