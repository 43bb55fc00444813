package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// refusingDriver prepares statements on the first connection it opens and refuses them on
// every later one the way a server at max_prepared_stmt_count does. It counts what ran.
type refusingDriver struct {
	mu                                                sync.Mutex
	conns, preparedExecs, plainExecs, refusedPrepares int
}

func (d *refusingDriver) Open(string) (driver.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.conns++
	return &refusingConn{d: d, first: d.conns == 1}, nil
}

type refusingConn struct {
	d     *refusingDriver
	first bool
}

func (c *refusingConn) Prepare(string) (driver.Stmt, error) {
	if !c.first {
		c.d.mu.Lock()
		c.d.refusedPrepares++
		c.d.mu.Unlock()
		return nil, &mysql.MySQLError{Number: errMaxPreparedStatements, Message: "Can't create more than max_prepared_stmt_count statements"}
	}
	return &countingStmt{d: c.d}, nil
}

func (c *refusingConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	c.d.mu.Lock()
	c.d.plainExecs++
	c.d.mu.Unlock()
	return driver.RowsAffected(1), nil
}

func (c *refusingConn) Close() error              { return nil }
func (c *refusingConn) Begin() (driver.Tx, error) { return fakeTx{}, nil }

type fakeTx struct{}

func (fakeTx) Commit() error   { return nil }
func (fakeTx) Rollback() error { return nil }

type countingStmt struct{ d *refusingDriver }

func (s *countingStmt) Close() error  { return nil }
func (s *countingStmt) NumInput() int { return -1 }
func (s *countingStmt) Exec([]driver.Value) (driver.Result, error) {
	s.d.mu.Lock()
	s.d.preparedExecs++
	s.d.mu.Unlock()
	return driver.RowsAffected(1), nil
}
func (s *countingStmt) Query([]driver.Value) (driver.Rows, error) { panic("not used") }

func TestPreparedWriterFallsBackToPlainStatementsWhenTheServerRefusesToPrepare(t *testing.T) {
	d := &refusingDriver{}
	db := sql.OpenDB(connector{d})
	defer db.Close()
	ctx := context.Background()
	w, err := NewPrepared(ctx, db, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	msg := Message{Exchange: "x", Payload: []byte("{}")}

	onFirst, err := db.BeginTx(ctx, nil) // the connection that prepared at NewPrepared
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, onFirst, msg); err != nil {
		t.Fatal(err)
	}
	if d.preparedExecs != 1 || d.plainExecs != 0 {
		t.Fatalf("on the preparing connection: %d prepared and %d plain executions, want 1 and 0", d.preparedExecs, d.plainExecs)
	}
	onSecond, err := db.BeginTx(ctx, nil) // a new connection, where preparing is refused
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := w.Write(ctx, onSecond, msg); err != nil {
			t.Fatalf("write after a refused prepare: %v", err)
		}
	}
	if err := w.Write(ctx, onFirst, msg); err != nil {
		t.Fatal(err)
	}
	if d.refusedPrepares != 1 || d.plainExecs != 3 || d.preparedExecs != 1 {
		t.Fatalf("after a refusal: %d refused prepares, %d plain and %d prepared executions, want 1, 3 and 1 "+
			"(one refusal, then plain statements only)", d.refusedPrepares, d.plainExecs, d.preparedExecs)
	}
	onFirst.Commit()
	onSecond.Commit()
}

type connector struct{ d *refusingDriver }

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.d.Open("") }
func (c connector) Driver() driver.Driver                        { return c.d }
