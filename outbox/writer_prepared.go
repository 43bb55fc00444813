package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"
)

// MaxPreparedRows is the largest number of rows a prepared Writer sends as a prepared
// statement; one statement is prepared per row count from 1 to this. Larger calls amortise
// their round trip over many rows and go as plain statements.
const MaxPreparedRows = 16

// MySQL errors after which a prepared Writer stops preparing and sends plain statements:
// the server's max_prepared_stmt_count is reached, or the server (or a proxy in front of
// it) does not support the statement in the binary protocol.
const (
	errMaxPreparedStatements = 1461
	errUnsupportedPrepared   = 1295
)

// preparedInserts holds the INSERT of each row count, prepared once on the Writer's db.
// database/sql prepares a statement again on each connection the first time a transaction
// there uses it, on that transaction's connection, and reuses it afterwards.
type preparedInserts struct {
	stmts    [MaxPreparedRows + 1]*sql.Stmt
	disabled atomic.Bool
}

// NewPrepared returns a Writer like New whose Write, when the Execer is a *sql.Tx begun on
// db and a statement holds at most MaxPreparedRows rows, executes the INSERT as a statement
// prepared on the transaction's connection: payloads travel in the binary protocol without
// escaping and the server parses the statement once per connection instead of on every
// call (on MariaDB 10.11, 10 messages of 256 bytes add about 0.07 ms less to a transaction).
// Every other call works as with New.
//
// It prepares the statements now, on one connection of db, so that no Write ever waits for
// a free connection of the pool. Each connection of db holds up to MaxPreparedRows
// statements on the server (count them against max_prepared_stmt_count); if the server
// refuses more, the Writer falls back to plain statements for good. Close releases them.
func NewPrepared(ctx context.Context, db *sql.DB, cfg Config) (*Writer, error) {
	w, err := New(cfg)
	if err != nil {
		return nil, err
	}
	p := &preparedInserts{}
	for rows := 1; rows <= MaxPreparedRows; rows++ {
		stmt, err := db.PrepareContext(ctx, w.insertSQL(rows))
		if err != nil {
			p.close()
			return nil, fmt.Errorf("outbox: prepare the INSERT of %d rows into %s: %w", rows, w.cfg.Table, err)
		}
		p.stmts[rows] = stmt
	}
	w.prepared = p
	return w, nil
}

// Close releases the prepared statements of a Writer from NewPrepared; on other Writers it
// does nothing. Write keeps working after Close, with plain statements.
func (w *Writer) Close() error {
	if w.prepared == nil {
		return nil
	}
	w.prepared.disabled.Store(true)
	return w.prepared.close()
}

func (p *preparedInserts) close() error {
	var errs []error
	for _, stmt := range p.stmts {
		if stmt != nil {
			errs = append(errs, stmt.Close())
		}
	}
	return errors.Join(errs...)
}

// exec runs the prepared INSERT of rows through tx when it can. handled is false when the
// caller must send a plain statement instead: tx is not a transaction of db, the row count
// has no prepared statement, or the server refused to prepare one.
func (p *preparedInserts) exec(ctx context.Context, tx Execer, rows int, args []any) (handled bool, err error) {
	sqlTx, ok := tx.(*sql.Tx)
	if !ok || rows > MaxPreparedRows || p.disabled.Load() {
		return false, nil
	}
	stmt := sqlTx.StmtContext(ctx, p.stmts[rows])
	defer stmt.Close() //nolint:errcheck // releases the transaction's handle only; the statement stays prepared
	_, err = stmt.ExecContext(ctx, args...)
	if err == nil {
		return true, nil
	}
	switch {
	case err.Error() == errOtherDatabase:
		// tx belongs to another *sql.DB; nothing ran, a plain statement does the work.
		return false, nil
	case refusedToPrepare(err):
		// Nothing ran and the transaction is intact; stop adding statements to a server
		// that refuses them.
		p.disabled.Store(true)
		return false, nil
	}
	return true, err
}

// errOtherDatabase is the (unexported) error database/sql gives a statement used in a
// transaction of another *sql.DB. Should its text change, such a call returns that error
// instead of falling back: still clear, and nothing is written.
const errOtherDatabase = "sql: Tx.Stmt: statement from different database used"

func refusedToPrepare(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == errMaxPreparedStatements || me.Number == errUnsupportedPrepared)
}
