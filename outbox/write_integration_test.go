package outbox_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// migrated returns a fresh, migrated test database.
func migrated(t *testing.T) *sql.DB {
	t.Helper()
	d := testenv.NewDatabase(t)
	if err := outbox.Migrate(t.Context(), d.DB); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return d.DB
}

type storedRow struct {
	id                                                                      uint64
	messageID, exchange, routingKey, partitionKey, eventType, aggregateType string
	contentType, correlationID                                              string
	partitionHash                                                           uint32
	headers, payload                                                        []byte
}

func readOutbox(t *testing.T, db *sql.DB) []storedRow {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT id, message_id, exchange_name, routing_key, partition_key,
		event_type, aggregate_type, content_type, correlation_id, partition_hash, headers, payload
		FROM syncworker_outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []storedRow
	for rows.Next() {
		var r storedRow
		if err := rows.Scan(&r.id, &r.messageID, &r.exchange, &r.routingKey, &r.partitionKey, &r.eventType,
			&r.aggregateType, &r.contentType, &r.correlationID, &r.partitionHash, &r.headers, &r.payload); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func countOutbox(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM syncworker_outbox").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func sampleMessages(n int) []outbox.Message {
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		payload := make([]byte, 1+i%300)
		for j := range payload {
			payload[j] = byte(i + j) // every byte value, including 0 and invalid UTF-8
		}
		msgs[i] = outbox.Message{
			ID:            fmt.Sprintf("msg-%04d", i),
			Exchange:      "orders",
			RoutingKey:    fmt.Sprintf("order.%d.created", i),
			PartitionKey:  fmt.Sprintf("order-%d", i%17),
			Type:          "order.created",
			AggregateType: "order",
			CorrelationID: fmt.Sprintf("corr-%d", i),
			Headers:       map[string]string{"tenant": "acme", "seq": fmt.Sprint(i), "ünï": "çødé ✓"},
			Payload:       payload,
		}
	}
	return msgs
}

func TestWriteRollbackLeavesNothingCommitKeepsAllInOrder(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	ctx := t.Context()
	msgs := sampleMessages(1000)

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Write(ctx, tx, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n := countOutbox(t, db); n != 0 {
		t.Fatalf("after rollback the outbox holds %d rows, want 0", n)
	}

	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Write(ctx, tx, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got := readOutbox(t, db)
	if len(got) != len(msgs) {
		t.Fatalf("after commit the outbox holds %d rows, want %d", len(got), len(msgs))
	}
	for i, r := range got {
		m := msgs[i]
		if r.messageID != m.ID || r.exchange != m.Exchange || r.routingKey != m.RoutingKey ||
			r.partitionKey != m.PartitionKey || r.eventType != m.Type || r.aggregateType != m.AggregateType ||
			r.correlationID != m.CorrelationID || r.contentType != outbox.DefaultContentType {
			t.Fatalf("row %d = %+v does not match message %+v", i, r, m)
		}
		if !bytes.Equal(r.payload, m.Payload) {
			t.Fatalf("row %d: payload bytes changed", i)
		}
		if r.partitionHash != outbox.PartitionHash(m.PartitionKey) {
			t.Fatalf("row %d: partition hash %d, want %d", i, r.partitionHash, outbox.PartitionHash(m.PartitionKey))
		}
		h, err := outbox.DecodeHeaders(r.headers)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != len(m.Headers) {
			t.Fatalf("row %d: headers %v, want %v", i, h, m.Headers)
		}
		for k, v := range m.Headers {
			if h[k] != v {
				t.Fatalf("row %d: header %q = %q, want %q", i, k, h[k], v)
			}
		}
		if i > 0 && r.id <= got[i-1].id {
			t.Fatalf("rows are not in write order at %d", i)
		}
	}
}

func TestWriteGeneratesTimeSortableIDsAndDefaults(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	var msgs []outbox.Message
	for i := 0; i < 50; i++ {
		msgs = append(msgs, outbox.Message{Exchange: outbox.DefaultExchange, RoutingKey: "q"})
	}
	if err := outbox.Write(t.Context(), db, msgs...); err != nil {
		t.Fatal(err)
	}
	got := readOutbox(t, db)
	seen := map[string]bool{}
	for i, r := range got {
		if len(r.messageID) != 36 || seen[r.messageID] {
			t.Fatalf("row %d: id %q is not a fresh UUID", i, r.messageID)
		}
		seen[r.messageID] = true
		if i > 0 && r.messageID < got[i-1].messageID {
			t.Fatalf("generated ids are not time-sortable: %q after %q", r.messageID, got[i-1].messageID)
		}
		if r.exchange != "" || r.partitionKey != r.messageID || r.headers != nil || r.payload == nil {
			t.Fatalf("row %d: defaults not applied: %+v", i, r)
		}
	}
}

func TestConcurrentWritersEveryCommittedMessageExactlyOnce(t *testing.T) {
	t.Parallel()
	t.Run("plain", func(t *testing.T) {
		t.Parallel()
		concurrentWriters(t, migrated(t), outbox.Write)
	})
	t.Run("prepared", func(t *testing.T) {
		t.Parallel()
		db := migrated(t)
		w, err := outbox.NewPrepared(t.Context(), db, outbox.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		concurrentWriters(t, db, w.Write)
	})
}

type writeFunc func(ctx context.Context, tx outbox.Execer, msgs ...outbox.Message) error

// concurrentWriters commits and rolls back transactions of 1 to 5 messages from 16
// connections at once and checks that exactly the committed messages exist, once each.
func concurrentWriters(t *testing.T, db *sql.DB, write writeFunc) {
	db.SetMaxOpenConns(16)
	const writers, txPerWriter = 16, 300
	var (
		mu        sync.Mutex
		committed = map[string]bool{}
		rolled    = map[string]bool{}
	)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; i < txPerWriter; i++ {
				var msgs []outbox.Message
				for j := 0; j < 1+r.IntN(5); j++ {
					msgs = append(msgs, outbox.Message{ID: fmt.Sprintf("w%d-t%d-m%d", w, i, j), Exchange: "x",
						PartitionKey: fmt.Sprintf("k%d", r.IntN(50)), Payload: []byte(`{}`)})
				}
				rollback := r.IntN(5) == 0
				if err := writeTx(context.Background(), db, write, msgs, rollback); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, m := range msgs {
					if rollback {
						rolled[m.ID] = true
					} else {
						committed[m.ID] = true
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := readOutbox(t, db)
	seen := map[string]int{}
	for _, r := range got {
		seen[r.messageID]++
		if rolled[r.messageID] {
			t.Fatalf("message %s from a rolled-back transaction exists", r.messageID)
		}
	}
	for id := range committed {
		if seen[id] != 1 {
			t.Fatalf("committed message %s exists %d times", id, seen[id])
		}
	}
	if len(got) != len(committed) {
		t.Fatalf("outbox holds %d rows, %d were committed", len(got), len(committed))
	}
	if len(rolled) == 0 || len(committed) == 0 {
		t.Fatalf("test did not exercise both outcomes: %d committed, %d rolled back", len(committed), len(rolled))
	}
}

func writeTx(ctx context.Context, db *sql.DB, write writeFunc, msgs []outbox.Message, rollback bool) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := write(ctx, tx, msgs...); err != nil {
		tx.Rollback()
		return err
	}
	if rollback {
		return tx.Rollback()
	}
	return tx.Commit()
}

func TestInvalidInputWritesNothingAndTransactionStaysUsable(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, "CREATE TABLE business (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	w, err := outbox.New(outbox.Config{MaxPayloadBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO business VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	bad := [][]outbox.Message{
		{{Exchange: "x"}, {RoutingKey: "no exchange"}},
		{{Exchange: "x", Payload: make([]byte, 101)}},
		{{Exchange: "x", Headers: map[string]string{"x-match": "all"}}},
		{{Exchange: "x", RoutingKey: string(make([]byte, 256))}},
		{{Exchange: "x", ID: "same"}, {Exchange: "x", ID: "same"}},
	}
	wantErr := []error{outbox.ErrMissingExchange, outbox.ErrPayloadTooLarge, outbox.ErrInvalidHeaderName, outbox.ErrFieldTooLong,
		outbox.ErrDuplicateID}
	for i, msgs := range bad {
		err := w.Write(ctx, tx, msgs...)
		if !errors.Is(err, wantErr[i]) {
			t.Fatalf("case %d: got %v, want %v", i, err, wantErr[i])
		}
	}
	if err := w.Write(ctx, tx, outbox.Message{Exchange: "x", ID: "good"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("transaction unusable after validation errors: %v", err)
	}
	got := readOutbox(t, db)
	if len(got) != 1 || got[0].messageID != "good" {
		t.Fatalf("outbox holds %+v, want only the valid message", got)
	}
	var n int
	db.QueryRowContext(ctx, "SELECT COUNT(*) FROM business").Scan(&n)
	if n != 1 {
		t.Fatalf("business row lost: %d rows", n)
	}
}

func TestWriteSplitsStatementsTransparently(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	w, err := outbox.New(outbox.Config{MaxRowsPerStatement: 7, MaxStatementBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	msgs := sampleMessages(100)
	msgs[50].Payload = make([]byte, 60<<10)
	msgs[51].Payload = make([]byte, 60<<10)
	tx, _ := db.BeginTx(t.Context(), nil)
	if err := w.Write(t.Context(), tx, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got := readOutbox(t, db)
	if len(got) != 100 {
		t.Fatalf("%d rows, want 100", len(got))
	}
	for i := range got {
		if got[i].messageID != msgs[i].ID || !bytes.Equal(got[i].payload, msgs[i].Payload) {
			t.Fatalf("row %d out of order or changed", i)
		}
	}
}

func TestCustomTableName(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	tables := outbox.Tables{Outbox: "events_out"}
	if _, err := outbox.MigrateTables(t.Context(), d.DB, tables); err != nil {
		t.Fatal(err)
	}
	w, err := outbox.New(outbox.Config{Table: "events_out"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(t.Context(), d.DB, outbox.Message{Exchange: "x"}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := d.DB.QueryRow("SELECT COUNT(*) FROM events_out").Scan(&n); err != nil || n != 1 {
		t.Fatalf("custom table holds %d rows (%v), want 1", n, err)
	}
	if _, err := outbox.New(outbox.Config{Table: "events; DROP TABLE x"}); !errors.Is(err, outbox.ErrInvalidIdentifier) {
		t.Fatalf("injection through the table name was not refused: %v", err)
	}
}

// Headers that pass validation fit the headers column and come back unchanged, whether the
// session is strict (an overlong value is an error) or not (it would be silently truncated).
func TestHeadersRoundTripAtTheColumnLimitInStrictAndNonStrictSessions(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"STRICT_TRANS_TABLES", ""} {
		t.Run("sql_mode="+mode, func(t *testing.T) {
			t.Parallel()
			db := migrated(t)
			ctx := t.Context()
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = ?", mode); err != nil {
				t.Fatal(err)
			}
			msgs := []outbox.Message{
				{Exchange: "x", Headers: map[string]string{"a": strings.Repeat("<", 12<<10)}},
				{Exchange: "x", Headers: map[string]string{"a": strings.Repeat("v", 65535-8)}}, // {"a":"..."} fills the column
				{Exchange: "x", Headers: map[string]string{"<&>": strings.Repeat("&>", 16000), "q": strings.Repeat(`"`, 16000)}},
			}
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if err := outbox.Write(ctx, tx, msgs...); err != nil {
				t.Fatal(err)
			}
			many := map[string]string{}
			for i := 0; i < 6000; i++ {
				many[fmt.Sprintf("h%05d", i)] = "1234"
			}
			err = outbox.Write(ctx, tx, outbox.Message{Exchange: "x"}, outbox.Message{Exchange: "x", Headers: many})
			var me *outbox.MessageError
			if !errors.Is(err, outbox.ErrHeadersTooLarge) || !errors.As(err, &me) || me.Index != 1 {
				t.Fatalf("6000 headers: got %v, want ErrHeadersTooLarge for message 1", err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			got := readOutbox(t, db)
			if len(got) != len(msgs) {
				t.Fatalf("%d rows, want %d", len(got), len(msgs))
			}
			for i, r := range got {
				h, err := outbox.DecodeHeaders(r.headers)
				if err != nil {
					t.Fatalf("row %d (%d bytes): %v", i, len(r.headers), err)
				}
				if len(h) != len(msgs[i].Headers) {
					t.Fatalf("row %d: %d headers, want %d", i, len(h), len(msgs[i].Headers))
				}
				for k, v := range msgs[i].Headers {
					if h[k] != v {
						t.Fatalf("row %d: header %q changed", i, k)
					}
				}
			}
		})
	}
}

// With the default limits, a large Write through interpolateParams (which the README
// recommends, and which escapes values up to twice their size into the statement text) never
// sends a statement over MariaDB's default max_allowed_packet (16 MiB), which would reset
// the connection and lose the caller's transaction.
func TestLargeWriteStaysUnderTheDefaultMaxAllowedPacket(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	if err := outbox.Migrate(t.Context(), d.DB); err != nil {
		t.Fatal(err)
	}
	db := testenv.OpenDSN(t, d.DSN, func(c *mysql.Config) { c.InterpolateParams = true })
	ctx := t.Context()
	var packet int
	if err := db.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&packet); err != nil {
		t.Fatal(err)
	}
	if packet > 16<<20 {
		t.Skipf("max_allowed_packet is %d, larger than MariaDB's default this test is about", packet)
	}
	// 400 messages with 50 KiB of headers each (~20 MB), as quotes the driver escapes, then 16
	// payloads of 1 MiB of zero bytes, which it escapes to 2 MiB each.
	var msgs []outbox.Message
	for i := 0; i < 400; i++ {
		msgs = append(msgs, outbox.Message{Exchange: "x", Headers: map[string]string{"h": strings.Repeat("'", 50<<10)}})
	}
	for i := 0; i < 16; i++ {
		msgs = append(msgs, outbox.Message{Exchange: "x", Payload: make([]byte, 1<<20)})
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := outbox.Write(ctx, tx, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := countOutbox(t, d.DB); n != len(msgs) {
		t.Fatalf("%d rows committed, want %d", n, len(msgs))
	}
}

// A message bigger than max_allowed_packet resets the connection, with an error that says
// why; with maxAllowedPacket=0 in the DSN the driver sends it in packets of their own and it
// is written (what Config.MaxPayloadBytes and the README promise).
func TestMessageOverMaxAllowedPacketNeedsTheDriversServerLimit(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	if err := outbox.Migrate(t.Context(), d.DB); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var packet int
	if err := d.DB.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&packet); err != nil {
		t.Fatal(err)
	}
	if packet > 16<<20 {
		t.Skipf("max_allowed_packet %d holds the largest payload with interpolateParams", packet)
	}
	w, err := outbox.New(outbox.Config{MaxPayloadBytes: 1<<24 - 1})
	if err != nil {
		t.Fatal(err)
	}
	msg := outbox.Message{Exchange: "x", Payload: bytes.Repeat([]byte{0, 'a'}, 1<<23-1)}
	for _, serverLimit := range []bool{false, true} {
		db := testenv.OpenDSN(t, d.DSN, func(c *mysql.Config) {
			c.InterpolateParams = true
			if serverLimit {
				c.MaxAllowedPacket = 0
			}
		})
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = w.Write(ctx, tx, msg)
		if !serverLimit {
			if err == nil || !strings.Contains(err.Error(), "max_allowed_packet") {
				t.Fatalf("driver's own limit: got %v, want an error naming max_allowed_packet", err)
			}
			tx.Rollback()
			continue
		}
		if err != nil {
			t.Fatalf("maxAllowedPacket=0: %v", err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	got := readOutbox(t, d.DB)
	if len(got) != 1 || !bytes.Equal(got[0].payload, msg.Payload) {
		t.Fatalf("%d rows, want the one message with its payload unchanged", len(got))
	}
}

// Through a *sql.DB each INSERT of a split Write commits on its own (only a *sql.Tx makes
// the call atomic); the error names the messages of the INSERT that failed, and the one
// MySQL's "at row N" points at.
func TestSplitWriteErrorNamesTheFailedMessages(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, "ALTER TABLE syncworker_outbox MODIFY routing_key VARBINARY(10) NOT NULL"); err != nil {
		t.Fatal(err)
	}
	msgs := make([]outbox.Message, 600)
	for i := range msgs {
		msgs[i] = outbox.Message{Exchange: "x", RoutingKey: "k"}
	}
	msgs[550].RoutingKey = "longer than ten bytes" // valid, but not for this narrowed column

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = outbox.Write(ctx, tx, msgs...)
	tx.Rollback()
	if err == nil || !strings.Contains(err.Error(), "messages 500 to 599") || !strings.Contains(err.Error(), "is message 550") {
		t.Fatalf("in a transaction: error %v does not name messages 500 to 599 and message 550", err)
	}
	if n := countOutbox(t, db); n != 0 {
		t.Fatalf("after rollback %d rows remain, want 0", n)
	}

	err = outbox.Write(ctx, db, msgs...)
	if err == nil || !strings.Contains(err.Error(), "is message 550") {
		t.Fatalf("through *sql.DB: error %v does not name message 550", err)
	}
	if n := countOutbox(t, db); n != 500 {
		t.Fatalf("through *sql.DB %d rows were committed, want the first statement's 500 (as documented)", n)
	}
}
