package subscriber

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/syncworker/syncworker/outbox"
)

// cleanLoop removes expired inbox rows every InboxCleanInterval until ctx ends.
func (s *Subscriber) cleanLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.InboxCleanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.CleanInbox(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("inbox cleaning failed", zap.Error(err))
		} else if n > 0 {
			s.log.Debug("inbox cleaned", zap.Int64("rows", n))
		}
	}
}

// CleanInbox deletes this consumer's inbox rows older than InboxRetention, InboxCleanBatch
// rows per statement so no long transaction or lock builds up, and returns how many it
// deleted. The age is measured by the database clock, which wrote processed_at.
func (s *Subscriber) CleanInbox(ctx context.Context) (int64, error) {
	query := "DELETE FROM " + outbox.QuoteIdentifier(s.cfg.Tables.Inbox) +
		" WHERE consumer = ? AND processed_at < NOW(6) - INTERVAL ? MICROSECOND LIMIT ?"
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, query, s.cfg.ConsumerName, s.cfg.InboxRetention.Microseconds(), s.cfg.InboxCleanBatch)
		if err != nil {
			return total, fmt.Errorf("subscriber: clean inbox %s: %w", s.cfg.Tables.Inbox, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("subscriber: clean inbox %s: %w", s.cfg.Tables.Inbox, err)
		}
		total += n
		if n < int64(s.cfg.InboxCleanBatch) {
			return total, nil
		}
	}
}
