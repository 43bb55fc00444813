package outbox

import (
	"context"
	"database/sql"
	"testing"
)

// failingExecer fails the test if Write reaches the database.
type failingExecer struct{ t *testing.T }

func (f failingExecer) ExecContext(context.Context, string, ...any) (sql.Result, error) {
	f.t.Fatal("Write executed SQL for invalid input")
	return nil, nil
}

// recordingExecer keeps the arguments of each statement.
type recordingExecer struct{ args [][]any }

func (r *recordingExecer) ExecContext(_ context.Context, _ string, args ...any) (sql.Result, error) {
	r.args = append(r.args, append([]any(nil), args...))
	return nil, nil
}

// errExecer fails every statement with err.
type errExecer struct{ err error }

func (e errExecer) ExecContext(context.Context, string, ...any) (sql.Result, error) {
	return nil, e.err
}
