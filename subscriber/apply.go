package subscriber

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
)

// outcome is what became of one delivery of a batch.
type outcome int

const (
	outcomeApplied   outcome = iota // the handler's effect committed with the inbox row
	outcomeDuplicate                // the inbox already held the id: skipped, acked
	outcomeFailed                   // the handler failed: its work was undone; move it on
)

// item is one delivery of a batch.
type item struct {
	d       amqp.Delivery
	msg     Message
	outcome outcome
	err     error // the handler's error, or why the delivery could not be decoded
}

// errTxBroken marks a failure of the transaction itself (not of one handler): the whole batch
// is retried in a new transaction.
var errTxBroken = errors.New("transaction failed")

// applyBatch applies items in one transaction, retrying the whole transaction with backoff
// while the database is unavailable, then acks what committed and moves what failed. It
// returns an error only when a move failed (the session must end so the broker hands the
// messages back); if ctx ends first, nothing of the batch is acked and nil is returned.
func (s *Subscriber) applyBatch(ctx context.Context, sess *session, items []*item) error {
	var decoded []*item
	for _, it := range items {
		if it.err == nil {
			decoded = append(decoded, it)
		}
	}
	if len(decoded) > 0 {
		b := backoff.NewExponentialBackOff()
		b.InitialInterval = 50 * time.Millisecond
		b.MaxInterval = 5 * time.Second
		b.MaxElapsedTime = 0
		b.Reset() // NewExponentialBackOff started from its own 500ms initial interval
		for {
			start := time.Now()
			err := s.applyOnce(ctx, decoded)
			if err == nil {
				s.cfg.Metrics.BatchApplied(len(decoded), time.Since(start))
				break
			}
			if ctx.Err() != nil {
				return nil // stopping: unacked deliveries go back to the broker
			}
			wait := b.NextBackOff()
			s.log.Warn("batch transaction failed; retrying the batch", zap.Int("size", len(decoded)),
				zap.Error(err), zap.Duration("retry_in", wait))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}

	if s.testHookAfterCommit != nil {
		s.testHookAfterCommit()
	}
	// Committed: ack the applied and the duplicates (in one socket write), then move the
	// failures on.
	var moves []move
	var moved []*item
	committed, dups := 0, 0
	now := time.Now()
	sess.cork.Batch(func() {
		for _, it := range items {
			if it.err == nil {
				committed++
				if it.outcome == outcomeDuplicate {
					dups++
				}
				ackQuietly(s.log, &it.d)
				continue
			}
			mv, parked, attempts := s.moveFor(&it.d, it.err, now)
			moves = append(moves, mv)
			moved = append(moved, it)
			level := s.log.Warn
			if parked {
				level = s.log.Error
			}
			level("message failed", zap.String("message_id", it.d.MessageId), zap.Int("attempts", attempts),
				zap.Bool("parked", parked), zap.String("to", mv.queue), zap.Error(it.err))
		}
	})
	if committed > 0 {
		s.cfg.Metrics.Consumed(committed)
	}
	if dups > 0 {
		s.cfg.Metrics.DuplicateSkipped(dups)
	}
	if len(moves) == 0 {
		return nil
	}
	// The moves that arrived are acked even when others failed: the session then ends to hand
	// the rest back, and an acked one is not moved again on every redelivery.
	arrived, err := sess.mover.publish(ctx, moves)
	sess.cork.Batch(func() {
		for i, it := range moved {
			if !arrived[i] {
				continue
			}
			ackQuietly(s.log, &it.d)
			if moves[i].queue == s.parkingLot {
				s.cfg.Metrics.Parked()
			} else {
				s.cfg.Metrics.Retried(failedAttempts(moves[i].pub.Headers))
			}
		}
	})
	return err
}

// applyOnce commits the batch's effects and sets every item's outcome. It first tries the
// fast path; if a delivery turns out to be a duplicate or a handler fails, that transaction
// is rolled back and the batch runs again with a savepoint per delivery, skipping the handler
// that already failed. On error nothing committed.
func (s *Subscriber) applyOnce(ctx context.Context, items []*item) error {
	for _, it := range items {
		it.outcome, it.err = outcomeApplied, nil
	}
	done, err := s.applyFast(ctx, items)
	if err != nil || done {
		return err
	}
	return s.applySavepoints(ctx, items)
}

// applyFast is the common case in one transaction without savepoints: one multi-row inbox
// insert for the whole batch, then the handlers. It returns false (after rolling back) when
// the insert found a duplicate, or when a handler failed, which it marks failed.
func (s *Subscriber) applyFast(ctx context.Context, items []*item) (done bool, err error) {
	start := time.Now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("%w: begin: %w", errTxBroken, err)
	}
	defer func() {
		if !done {
			tx.Rollback() //nolint:errcheck // nothing of this attempt is kept either way
		}
	}()
	query := s.inboxInsert + strings.Repeat(", (?, ?)", len(items)-1)
	args := make([]any, 0, 2*len(items))
	for _, it := range items {
		args = append(args, s.cfg.ConsumerName, it.msg.ID)
	}
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return false, fmt.Errorf("%w: inbox insert: %w", errTxBroken, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, fmt.Errorf("%w: inbox insert: %w", errTxBroken, err)
	} else if n != int64(len(items)) {
		return false, nil // a duplicate: sort it out delivery by delivery
	}
	handlersStart := time.Now()
	if s.cfg.BatchHandler != nil {
		msgs := make([]Message, len(items))
		for i, it := range items {
			msgs[i] = it.msg
		}
		if herr := recoverHandler(s.log, items[0].msg.ID, func() error { return s.cfg.BatchHandler(ctx, tx, msgs) }); herr != nil {
			if breaksTransaction(herr) {
				return false, fmt.Errorf("%w: batch handler: %w", errTxBroken, herr)
			}
			// Nobody is blamed yet: the savepoint path finds the message that fails.
			s.log.Debug("batch handler failed; applying the batch message by message", zap.Error(herr))
			return false, nil
		}
	} else {
		for _, it := range items {
			if herr := s.callHandler(ctx, tx, it.msg); herr != nil {
				if breaksTransaction(herr) {
					return false, fmt.Errorf("%w: handler: %w", errTxBroken, herr)
				}
				it.outcome, it.err = outcomeFailed, herr
				return false, nil
			}
		}
	}
	handlers := time.Since(handlersStart)
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("%w: commit: %w", errTxBroken, err)
	}
	s.costs.observe(len(items), handlers, time.Since(start))
	return true, nil
}

// applySavepoints runs one transaction over items: per item a savepoint, the inbox insert and
// the handler; a failed handler is rolled back to its savepoint so the others keep their
// effect. Items already marked failed are skipped.
func (s *Subscriber) applySavepoints(ctx context.Context, items []*item) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: begin: %w", errTxBroken, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback() //nolint:errcheck // the error that got us here matters more
		}
	}()
	for _, it := range items {
		if it.outcome == outcomeFailed {
			continue
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT sw_item"); err != nil {
			return fmt.Errorf("%w: savepoint: %w", errTxBroken, err)
		}
		res, err := tx.ExecContext(ctx, s.inboxInsert, s.cfg.ConsumerName, it.msg.ID)
		if err != nil {
			return fmt.Errorf("%w: inbox insert: %w", errTxBroken, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("%w: inbox insert: %w", errTxBroken, err)
		} else if n == 0 {
			it.outcome = outcomeDuplicate
		} else if herr := s.callHandler(ctx, tx, it.msg); herr != nil {
			if breaksTransaction(herr) {
				return fmt.Errorf("%w: handler: %w", errTxBroken, herr)
			}
			// If the handler's failure broke the transaction otherwise (a lost connection),
			// the savepoint is gone too and the whole batch is retried.
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT sw_item"); err != nil {
				return fmt.Errorf("%w: handler failed (%v) and rollback to savepoint failed: %w", errTxBroken, herr, err)
			}
			it.outcome, it.err = outcomeFailed, herr
			continue
		}
		if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT sw_item"); err != nil {
			return fmt.Errorf("%w: release savepoint: %w", errTxBroken, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: commit: %w", errTxBroken, err)
	}
	return nil
}

// callHandler calls the handler, turning a panic into an error.
func (s *Subscriber) callHandler(ctx context.Context, tx *sql.Tx, msg Message) error {
	return recoverHandler(s.log, msg.ID, func() error { return s.cfg.Handler(ctx, tx, msg) })
}

// recoverHandler calls f, turning a panic into an error.
func recoverHandler(log *zap.Logger, messageID string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("handler panicked", zap.String("message_id", messageID), zap.Any("panic", r),
				zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("%w: %v", ErrHandlerPanic, r)
		}
	}()
	return f()
}

func ackQuietly(log *zap.Logger, d *amqp.Delivery) {
	if err := d.Ack(false); err != nil {
		// The channel is gone: the broker redelivers and the inbox makes that harmless.
		log.Debug("ack failed; the message will be redelivered", zap.String("message_id", d.MessageId), zap.Error(err))
	}
}

// breaksTransaction reports a handler error that is the transaction's fault, not the
// message's: the batch is retried and the message is not blamed.
func breaksTransaction(err error) bool { return isDeadlock(err) || isConnectionLost(err) }

// isDeadlock reports a deadlock (MySQL error 1213), after which the server has rolled back the
// whole transaction.
func isDeadlock(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1213
}

// isConnectionLost reports a handler error that is the database connection failing (killed,
// cut, server gone), not the message: the transaction is lost, so the batch is retried.
func isConnectionLost(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1927 || me.Number == 1053 // connection killed, server shutting down
	}
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, sql.ErrConnDone)
}
