package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DeadMessage is a row the relay gave up on after its maximum attempts.
type DeadMessage struct {
	ID           int64 // id in the dead table; what retry and purge take
	OutboxID     int64
	MessageID    string
	Exchange     string
	RoutingKey   string
	PartitionKey string
	Type         string
	Attempts     int
	LastError    string
	CreatedAt    time.Time
	DiedAt       time.Time
}

// DeadStore lists, retries and purges dead messages.
type DeadStore struct {
	db     *sql.DB
	tables Tables
}

// NewDeadStore returns the dead-message queries on db for the given table names.
func NewDeadStore(db *sql.DB, tables Tables) (*DeadStore, error) {
	if db == nil {
		return nil, errors.New("outbox: dead store: db is nil")
	}
	tables = tables.WithDefaults()
	if err := tables.Validate(); err != nil {
		return nil, fmt.Errorf("outbox: dead store: %w", err)
	}
	return &DeadStore{db: db, tables: tables}, nil
}

// List returns up to limit dead messages with ids above afterID, oldest first. Payloads are
// not read.
func (s *DeadStore) List(ctx context.Context, afterID int64, limit int) ([]DeadMessage, error) {
	q := s.tables.expand(`SELECT id, outbox_id, message_id, exchange_name, routing_key, partition_key, event_type,
  attempts, IFNULL(last_error, ''), UNIX_TIMESTAMP(created_at), UNIX_TIMESTAMP(died_at)
FROM {outbox_dead} WHERE id > ? ORDER BY id LIMIT ?`)
	rows, err := s.db.QueryContext(ctx, q, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: list dead messages: %w", err)
	}
	defer rows.Close()
	var out []DeadMessage
	for rows.Next() {
		var d DeadMessage
		var created, died string
		if err := rows.Scan(&d.ID, &d.OutboxID, &d.MessageID, &d.Exchange, &d.RoutingKey, &d.PartitionKey,
			&d.Type, &d.Attempts, &d.LastError, &created, &died); err != nil {
			return nil, fmt.Errorf("outbox: list dead messages: %w", err)
		}
		d.CreatedAt, d.DiedAt = parseUnixTime(created), parseUnixTime(died)
		out = append(out, d)
	}
	return out, rows.Err()
}

// Count returns the number of dead messages.
func (s *DeadStore) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, s.tables.expand("SELECT COUNT(*) FROM {outbox_dead}")).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox: count dead messages: %w", err)
	}
	return n, nil
}

// Retry puts dead messages back into the outbox with their attempts reset, in one
// transaction, and returns how many moved. ids nil means every dead message. A retried row
// gets a new outbox id: it goes after the rows of its key that were written meanwhile.
func (s *DeadStore) Retry(ctx context.Context, ids []int64) (int64, error) {
	insert := s.tables.expand(`INSERT INTO {outbox} (partition_hash, message_id, exchange_name, routing_key,
  partition_key, event_type, aggregate_type, content_type, correlation_id, headers, payload, created_at)
SELECT partition_hash, message_id, exchange_name, routing_key, partition_key, event_type, aggregate_type,
  content_type, correlation_id, headers, payload, created_at FROM {outbox_dead}`)
	return s.move(ctx, ids, insert)
}

// Purge deletes dead messages for good and returns how many. ids nil means all of them.
func (s *DeadStore) Purge(ctx context.Context, ids []int64) (int64, error) {
	return s.move(ctx, ids, "")
}

// move runs the optional copy statement and then deletes the selected dead rows, both over
// the same selection and in one transaction (the selection is locked by the copy).
func (s *DeadStore) move(ctx context.Context, ids []int64, copyHead string) (int64, error) {
	if ids != nil && len(ids) == 0 {
		return 0, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("outbox: dead messages: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	del := s.tables.expand("DELETE FROM {outbox_dead}")
	var total int64
	run := func(where string, args []any) error {
		if copyHead != "" {
			// INSERT ... SELECT locks the rows it reads, so the DELETE below removes exactly them.
			if _, err := tx.ExecContext(ctx, copyHead+where+" ORDER BY id", args...); err != nil {
				return fmt.Errorf("outbox: copy dead messages back to the outbox: %w", err)
			}
		}
		res, err := tx.ExecContext(ctx, del+where, args...)
		if err != nil {
			return fmt.Errorf("outbox: delete dead messages: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
		return nil
	}
	if ids == nil {
		if err := run("", nil); err != nil {
			return 0, err
		}
	}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), maxIDsPerStatement)]
		ids = ids[len(chunk):]
		where, args := inList(" WHERE id IN ", chunk)
		if err := run(where, args); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("outbox: dead messages: commit: %w", err)
	}
	return total, nil
}
