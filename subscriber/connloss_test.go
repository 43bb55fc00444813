package subscriber

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// A handler whose database connection is killed in the middle of its work has not failed:
// the batch is retried in a new transaction, and the message is applied on its first
// attempt, not sent round the retry tiers (where repeated outages would park it).
func TestHandlerConnectionKilledRetriesBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var kills atomic.Int32
	cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
		if kills.Add(1) == 1 {
			var id int64
			if err := tx.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
				return err
			}
			if _, err := f.db.DB.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id)); err != nil {
				return err
			}
		}
		return recordHandler(ctx, tx, msg)
	})
	cfg.BatchSize = 1
	metrics := &countingMetrics{}
	cfg.Metrics = metrics
	f.publish("m1", "k", "test", []byte("m1"))
	f.start(f.db.DB, cfg)
	f.waitApplied([]string{"m1"}, 20*time.Second)
	var attempt int
	if err := f.db.DB.QueryRow("SELECT attempt FROM applied WHERE message_id = 'm1'").Scan(&attempt); err != nil || attempt != 1 {
		t.Errorf("applied on attempt %d (%v), want 1: the lost connection was blamed on the message", attempt, err)
	}
	if n := metrics.get(&metrics.retried); n != 0 {
		t.Errorf("%d messages sent to a retry tier, want 0", n)
	}
}
