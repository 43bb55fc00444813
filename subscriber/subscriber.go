package subscriber

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/internal/naming"
	"github.com/syncworker/syncworker/outbox"
)

// Subscriber consumes one queue and applies its messages to db exactly once per consumer name.
type Subscriber struct {
	cfg         Config
	db          *sql.DB
	log         *zap.Logger
	retryQueues []string // naming.RetryQueue for each of cfg.RetryDelays
	parkingLot  string
	inboxInsert string

	consuming atomic.Bool // a session is consuming the queue, for readiness
	// notConsuming is why not, while it does not: a failed dial or what ended the last session.
	notConsuming atomic.Pointer[error]

	costs applyCosts // what the handlers and a transaction take: see lanes

	// testHookAfterCommit, when set by a test, runs after a batch committed and before its acks.
	testHookAfterCommit func()
	// testWrapConn, when set by a test, wraps the broker connection (to count its writes).
	testWrapConn func(net.Conn) net.Conn
	// testHandBackByNack, when set by a test, replaces amqpx.RequeueByNack's answer, so the
	// nack path runs on any broker; testHandedBack counts the deliveries it nacked.
	testHandBackByNack *bool
	testHandedBack     atomic.Int64
}

// Consuming reports whether the subscriber is connected and consuming its queue now, for
// readiness checks.
func (s *Subscriber) Consuming() bool { return s.consuming.Load() }

// Err says why the subscriber is not consuming: the last failed dial (wrong address or
// credentials) or the error that ended its last session (the queue does not exist, the
// connection was lost). It is nil while it consumes and before its first attempt. Run keeps
// retrying whatever it is; Err lets a caller without a logger see it.
func (s *Subscriber) Err() error {
	if s.consuming.Load() {
		return nil
	}
	if p := s.notConsuming.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Subscriber) noteNotConsuming(err error) {
	if err != nil {
		s.notConsuming.Store(&err)
	}
}

// New checks cfg and returns a Subscriber on db, which must hold syncworker's tables
// (outbox.Migrate) and the handler's tables.
func New(db *sql.DB, cfg Config) (*Subscriber, error) {
	cfg.setDefaults()
	var errs []error
	if db == nil {
		errs = append(errs, errors.New("db is required"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("subscriber: invalid config: %w", err)
	}
	s := &Subscriber{
		cfg:        cfg,
		db:         db,
		log:        cfg.Logger.With(zap.String("queue", cfg.Queue), zap.String("consumer", cfg.ConsumerName)),
		parkingLot: naming.ParkingLot(cfg.Queue),
		inboxInsert: "INSERT IGNORE INTO " + outbox.QuoteIdentifier(cfg.Tables.Inbox) +
			" (consumer, message_id) VALUES (?, ?)",
	}
	for _, d := range cfg.RetryDelays {
		s.retryQueues = append(s.retryQueues, naming.RetryQueue(cfg.Queue, d))
	}
	return s, nil
}

// Run consumes until ctx is cancelled, reconnecting to the broker with backoff whenever the
// connection is lost. On cancel it stops taking deliveries, lets in-flight batches finish
// (at most StopTimeout), cancels the consumer once their acks are sent (waiting at most 5 s for
// the broker), hands back the rest unacked, and returns nil.
func (s *Subscriber) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if s.cfg.InboxCleanInterval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.cleanLoop(ctx)
		}()
	}
	defer wg.Wait()

	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = 0
	b.Reset() // NewExponentialBackOff started from its own 500ms initial interval
	for {
		started := time.Now()
		err := s.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		s.noteNotConsuming(err)
		if time.Since(started) > time.Minute {
			b.Reset()
		}
		wait := b.NextBackOff()
		s.log.Warn("consumer session ended; reconnecting", zap.Error(err), zap.Duration("retry_in", wait))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// session is one broker connection: a consuming channel, a publishing channel for moves, and
// Concurrency lanes.
type session struct {
	mover *mover
	cork  *amqpx.CorkConn // the connection's socket: a batch's acks leave in one write
}

func (s *Subscriber) session(ctx context.Context) error {
	conn, cork, err := amqpx.DialRetryCorked(ctx, amqpx.DialConfig{URL: s.cfg.AMQPURL, TLS: s.cfg.AMQPTLS,
		Name: s.cfg.ConnectionName, WrapConn: s.testWrapConn, OnFailure: s.noteNotConsuming}, s.log)
	if err != nil {
		return err
	}
	stalled := false // the broker stopped answering: closing must not wait for its close-ok
	defer func() {
		if stalled {
			conn.CloseDeadline(time.Now()) //nolint:errcheck // the session is over either way
			return
		}
		conn.Close()
	}()
	pubCh, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open publishing channel: %w", err)
	}
	mv, err := newMover(pubCh, s.cfg.BatchSize)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open consuming channel: %w", err)
	}
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch: %w", err)
	}
	tag := fmt.Sprintf("%.200s.%d", s.cfg.ConsumerName, time.Now().UnixNano()) // within 255 bytes
	deliveries, err := ch.Consume(s.cfg.Queue, tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", s.cfg.Queue, err)
	}
	s.consuming.Store(true)
	s.notConsuming.Store(nil)
	defer s.consuming.Store(false)
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	s.log.Info("consuming", zap.Int("concurrency", s.cfg.Concurrency), zap.Int("prefetch", s.cfg.Prefetch),
		zap.Int("batch_size", s.cfg.BatchSize))

	// Work outlives ctx by up to StopTimeout, so a stop lets in-flight batches commit and ack.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	sess := &session{mover: mv, cork: cork}
	fatal := make(chan error, s.cfg.Concurrency)
	lanes := newLanes(s.cfg.Concurrency, s.cfg.BatchSize, s.cfg.FlushInterval, s.costs.takeAlong)
	apply := func(ctx context.Context, ds []amqp.Delivery) error { return s.applyDeliveries(ctx, sess, ds) }
	var wg sync.WaitGroup
	for i := range s.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lanes.run(workCtx, i, apply); err != nil {
				fatal <- err
			}
		}()
	}

	var result error
	consumerLive := true // the consumer's channel still works: cancel it after the last acks
dispatch:
	for {
		select {
		case <-ctx.Done():
			// Deliveries no handler started on are handed back once the consumer is
			// cancelled, which happens after the lanes' last acks (cancelAfterAcks).
			break dispatch
		case err := <-fatal:
			result = err
			break dispatch
		case err := <-connClosed:
			result, consumerLive = fmt.Errorf("connection closed: %v", err), false
			break dispatch
		case d, ok := <-deliveries:
			if !ok {
				result, consumerLive = errors.New("the broker closed the consumer (channel closed or consumer cancelled)"), false
				break dispatch
			}
			lanes.push(orderKey(&d), d)
		}
	}
	untouched := lanes.close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if !consumerLive {
		cancelWork() // the connection or channel is gone: abandon in-flight work, it will be redelivered
	}
	// A stop or a failed move lets in-flight batches finish (their moves too: one abandoned
	// between its publish and its confirm stays unacked and is moved again when redelivered).
	select {
	case <-done:
	case <-time.After(s.cfg.StopTimeout):
		s.log.Warn("in-flight batches did not finish within the stop timeout; handing them back", zap.Duration("stop_timeout", s.cfg.StopTimeout))
		cancelWork()
		<-done
	}
	if consumerLive { // a stop, or a failed move: the acks already sent must not be lost
		byNack := amqpx.RequeueByNack(conn.Properties)
		if s.testHandBackByNack != nil {
			byNack = *s.testHandBackByNack
		}
		confirmed, timedOut := cancelAfterAcks(ch, tag, s.log)
		stalled = timedOut
		if confirmed && byNack {
			// A lane whose move failed after the dispatch loop ended left its error in fatal.
			onlyUntouched := result == nil && len(fatal) == 0
			s.handBack(ch, sess.cork, untouched, deliveries, lanes.cutShortKeys(), onlyUntouched)
		}
	}
	return result
}
