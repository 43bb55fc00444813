package outbox_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"testing"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// sessionCounter reads a Com_* counter of the connection tx runs on.
func sessionCounter(t *testing.T, tx *sql.Tx, name string) int {
	t.Helper()
	var key string
	var n int
	if err := tx.QueryRowContext(t.Context(), "SHOW SESSION STATUS LIKE '"+name+"'").Scan(&key, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPreparedWriterStoresExactlyWhatThePlainWriterStores(t *testing.T) {
	t.Parallel()
	plainDB, preparedDB := migrated(t), migrated(t)
	w, err := outbox.NewPrepared(t.Context(), preparedDB, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var all []outbox.Message
	for _, n := range []int{1, 10, outbox.MaxPreparedRows, outbox.MaxPreparedRows + 1, 100} {
		msgs := sampleMessages(n)
		for i := range msgs {
			msgs[i].ID = fmt.Sprintf("size%d-%s", n, msgs[i].ID)
		}
		all = append(all, msgs...)
		if err := writeTx(t.Context(), plainDB, outbox.Write, msgs, false); err != nil {
			t.Fatal(err)
		}
		tx, err := preparedDB.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(t.Context(), tx, msgs...); err != nil {
			t.Fatal(err)
		}
		prepares, executes := sessionCounter(t, tx, "Com_stmt_prepare"), sessionCounter(t, tx, "Com_stmt_execute")
		// The second call of a size on the same connection shows whether a prepared
		// statement was reused (no new prepare, one execute). The test pool has no
		// interpolateParams, so a plain statement prepares and executes afresh.
		msgs2 := append([]outbox.Message(nil), msgs...)
		for i := range msgs2 {
			msgs2[i].ID += "-again"
		}
		all = append(all, msgs2...)
		if err := outbox.Write(t.Context(), plainDB, msgs2...); err != nil {
			t.Fatal(err)
		}
		if err := w.Write(t.Context(), tx, msgs2...); err != nil {
			t.Fatal(err)
		}
		newPrepares := sessionCounter(t, tx, "Com_stmt_prepare") - prepares
		newExecutes := sessionCounter(t, tx, "Com_stmt_execute") - executes
		if n <= outbox.MaxPreparedRows && (newPrepares != 0 || newExecutes != 1) {
			t.Fatalf("%d rows: the second INSERT of the size prepared %d and executed %d statements, want 0 and 1",
				n, newPrepares, newExecutes)
		}
		if n > outbox.MaxPreparedRows && (newPrepares != 1 || newExecutes != 1) {
			t.Fatalf("%d rows: prepared %d and executed %d statements, want a plain statement (1 and 1)",
				n, newPrepares, newExecutes)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	plain, prepared := readOutbox(t, plainDB), readOutbox(t, preparedDB)
	if len(plain) != len(all) || len(prepared) != len(all) {
		t.Fatalf("plain writer stored %d rows, prepared %d, want %d each", len(plain), len(prepared), len(all))
	}
	for i := range plain {
		a, b := plain[i], prepared[i]
		a.id, b.id = 0, 0
		if a.messageID != all[i].ID {
			t.Fatalf("row %d is %s, want %s: rows out of write order", i, a.messageID, all[i].ID)
		}
		if !bytes.Equal(a.payload, b.payload) || !bytes.Equal(a.headers, b.headers) {
			t.Fatalf("row %d (%s): payload or headers differ between the plain and the prepared writer", i, a.messageID)
		}
		a.payload, b.payload, a.headers, b.headers = nil, nil, nil, nil
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("row %d differs:\nplain    %+v\nprepared %+v", i, a, b)
		}
	}
}

func TestPreparedWriterWritesThroughEveryOtherExecer(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	if err := outbox.Migrate(t.Context(), d.DB); err != nil {
		t.Fatal(err)
	}
	w, err := outbox.NewPrepared(t.Context(), d.DB, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("mysql", d.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	msg := func(id string) outbox.Message { return outbox.Message{ID: id, Exchange: "x", Payload: []byte(id)} }

	if err := w.Write(t.Context(), d.DB, msg("through-the-pool")); err != nil {
		t.Fatal(err)
	}
	if err := writeTx(t.Context(), other, w.Write, []outbox.Message{msg("tx-of-another-pool")}, false); err != nil {
		t.Fatalf("a transaction of another *sql.DB: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := writeTx(t.Context(), d.DB, w.Write, []outbox.Message{msg("after-close")}, false); err != nil {
		t.Fatalf("after Close: %v", err)
	}
	got := readOutbox(t, d.DB)
	if len(got) != 3 || got[0].messageID != "through-the-pool" || got[1].messageID != "tx-of-another-pool" ||
		got[2].messageID != "after-close" {
		t.Fatalf("outbox holds %+v, want the three messages in order", got)
	}
}

func TestPreparedWriterSurvivesALostConnection(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	db.SetMaxOpenConns(1) // every transaction on the one connection, until it is killed
	ctx := t.Context()
	w, err := outbox.NewPrepared(ctx, db, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	admin := migrated(t) // another pool, to kill the writer's connection from outside
	kill := func(tx *sql.Tx) {
		var id int64
		if err := tx.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id)); err != nil {
			t.Fatal(err)
		}
	}
	msg := func(id string) outbox.Message { return outbox.Message{ID: id, Exchange: "x", Payload: []byte(id)} }

	// A transaction whose connection dies between two writes commits nothing.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, tx, msg("before-kill")); err != nil {
		t.Fatal(err)
	}
	kill(tx)
	if err := w.Write(ctx, tx, msg("after-kill")); err == nil {
		t.Fatal("a write on a killed connection reported success")
	}
	if err := tx.Commit(); err == nil {
		t.Fatal("a transaction on a killed connection committed")
	}
	// The next transaction gets a new connection, where the statement is prepared again.
	if err := writeTx(ctx, db, w.Write, []outbox.Message{msg("new-connection")}, false); err != nil {
		t.Fatalf("write on a new connection: %v", err)
	}
	got := readOutbox(t, db)
	if len(got) != 1 || got[0].messageID != "new-connection" {
		t.Fatalf("outbox holds %+v, want only the message of the transaction that committed", got)
	}
}
