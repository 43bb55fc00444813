package subscriber

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/syncworker/syncworker/outbox"
)

// Handler applies one message inside tx, the subscriber's transaction that also records the
// message id in the inbox. It must do all its database work through tx and must not commit or
// roll it back. A returned error (or a panic) undoes the handler's work and sends the message
// to the next retry tier; wrap ErrPermanent to park it at once.
type Handler func(ctx context.Context, tx *sql.Tx, msg Message) error

// BatchHandler applies msgs inside tx with the effect of calling the Handler on each in order,
// under the same rules as a Handler. An error fails (and undoes) the whole batch.
type BatchHandler func(ctx context.Context, tx *sql.Tx, msgs []Message) error

// Config configures a Subscriber. Fields without a default are required.
type Config struct {
	// AMQPURL of the broker (amqp:// or amqps://).
	AMQPURL string
	// AMQPTLS configures TLS for amqps:// URLs; nil uses the system roots.
	AMQPTLS *tls.Config
	// Queue to consume, declared by topology together with its retry tiers and parking lot
	// (internal/naming: Queue.retry.<delay>, Queue.parked).
	Queue string
	// ConsumerName scopes the inbox: the same message id is applied once per consumer name.
	// Keep it stable across restarts and deployments.
	ConsumerName string
	// Handler applies one message. Required.
	Handler Handler
	// BatchHandler, when set, applies a whole group-commit batch in the fast path instead of
	// Handler per message (RowSync.HandleBatch: a few statements per batch instead of several
	// per message). It must have the effect of Handler on each message in order. If it fails,
	// the batch is rolled back and applied message by message with Handler and savepoints, so
	// the failure is attributed to its message. Optional.
	BatchHandler BatchHandler

	// Concurrency is the number of lanes applying messages in parallel. Messages with the
	// same partition key (header sw-partition-key, else the message id) always use the same
	// lane, in delivery order. A batch with room may take along what idle lanes hold, when
	// the handlers are quick next to a transaction (see the package README). Default 4.
	// Each lane holds a database connection while it applies: let db keep Concurrency+2
	// connections, idle ones included (sql.DB.SetMaxIdleConns; database/sql keeps only 2 idle
	// by default, so more lanes close connections and dial new ones all the time).
	Concurrency int
	// BatchSize is how many deliveries of one lane share one transaction (group commit).
	// Default 32, at most 1000; 1 disables group commit.
	BatchSize int
	// FlushInterval is how long a lane may wait for a batch to fill once it has a delivery.
	// Default 0: no wait. A lane then takes what queued up while its previous batch was
	// committing (natural group commit), so batches grow with the load and a lone message is
	// not delayed. A positive interval trades latency for larger batches at low rates.
	FlushInterval time.Duration
	// Prefetch is the broker's limit of unacked deliveries on the consumer. Default
	// 2 * Concurrency * BatchSize, so every lane can fill a batch while one commits.
	Prefetch int

	// RetryDelays are the delay tiers; failed attempt n waits RetryDelays[min(n-1, len-1)].
	// Each needs its queue (naming.RetryQueue). Default 1s, 10s, 1m, 10m.
	RetryDelays []time.Duration
	// MaxAttempts counts the first delivery too: after this many failed attempts the message
	// is parked. Default 5; 1 parks on the first failure.
	MaxAttempts int

	// InboxRetention is how long inbox rows are kept. It must exceed the longest time after
	// which the same message id can arrive again: the longest retry delay, plus how long parked
	// messages may wait before an operator replays them. Default 7 days.
	InboxRetention time.Duration
	// InboxCleanInterval is how often old inbox rows are removed. Default 1 minute; negative
	// disables cleaning by this subscriber.
	InboxCleanInterval time.Duration
	// InboxCleanBatch is how many rows one DELETE removes at most. Default 1000.
	InboxCleanBatch int

	// StopTimeout bounds how long a stop waits for in-flight batches to finish; what has not
	// finished by then is handed back to the broker unacked (their contexts are cancelled and
	// their transactions rolled back). A handler that ignores its context and keeps running
	// still holds Run until it returns: Go cannot stop it. After the batches, a stop waits up to
	// 5 s more for the broker to confirm the consumer's cancel (see cancelAfterAcks). Default 30s.
	StopTimeout time.Duration
	// ConnectionName is shown by the broker for the connection. Default "syncworker consume <ConsumerName>".
	ConnectionName string
	// Tables names syncworker's tables; only Inbox is used here. Empty fields take defaults.
	Tables outbox.Tables
	// Metrics receives counters. Default NopMetrics.
	Metrics Metrics
	// Logger; nil means zap.NewNop().
	Logger *zap.Logger
}

// DefaultRetryDelays are the retry tiers used when Config.RetryDelays is empty.
var DefaultRetryDelays = []time.Duration{time.Second, 10 * time.Second, time.Minute, 10 * time.Minute}

const (
	defaultConcurrency        = 4
	defaultBatchSize          = 32
	defaultMaxAttempts        = 5
	defaultInboxRetention     = 7 * 24 * time.Hour
	defaultInboxCleanInterval = time.Minute
	defaultInboxCleanBatch    = 1000
	defaultStopTimeout        = 30 * time.Second
	maxPrefetch               = 65535
	maxBatchSize              = 1000 // one multi-row inbox insert per batch stays small
)

func (c *Config) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = defaultConcurrency
	}
	if c.BatchSize == 0 {
		c.BatchSize = defaultBatchSize
	}
	if c.Prefetch == 0 {
		c.Prefetch = min(2*c.Concurrency*c.BatchSize, maxPrefetch)
	}
	if len(c.RetryDelays) == 0 {
		c.RetryDelays = slices.Clone(DefaultRetryDelays)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = defaultMaxAttempts
	}
	if c.InboxRetention == 0 {
		c.InboxRetention = defaultInboxRetention
	}
	if c.InboxCleanInterval == 0 {
		c.InboxCleanInterval = defaultInboxCleanInterval
	}
	if c.InboxCleanBatch == 0 {
		c.InboxCleanBatch = defaultInboxCleanBatch
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = defaultStopTimeout
	}
	if c.ConnectionName == "" {
		c.ConnectionName = "syncworker consume " + c.ConsumerName
	}
	c.Tables = c.Tables.WithDefaults()
	if c.Metrics == nil {
		c.Metrics = NopMetrics{}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Validate returns every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.AMQPURL == "" {
		bad("AMQPURL is required")
	}
	if c.Queue == "" || len(c.Queue) > 200 {
		bad("Queue: %q must be 1-200 bytes (room is left for the retry tier suffix)", c.Queue)
	}
	if c.ConsumerName == "" || len(c.ConsumerName) > 255 {
		bad("ConsumerName: %q must be 1-255 bytes", c.ConsumerName)
	}
	if c.Handler == nil {
		bad("Handler is required")
	}
	if c.Concurrency < 1 {
		bad("Concurrency: %d must be at least 1", c.Concurrency)
	}
	if c.BatchSize < 1 || c.BatchSize > maxBatchSize {
		bad("BatchSize: %d is outside 1..%d", c.BatchSize, maxBatchSize)
	}
	if c.FlushInterval < 0 {
		bad("FlushInterval: %s is negative", c.FlushInterval)
	}
	if c.Prefetch < 1 || c.Prefetch > maxPrefetch {
		bad("Prefetch: %d is outside 1..%d", c.Prefetch, maxPrefetch)
	}
	longest := time.Duration(0)
	for i, d := range c.RetryDelays {
		if d <= 0 {
			bad("RetryDelays[%d]: %s must be positive", i, d)
		}
		longest = max(longest, d)
	}
	if c.MaxAttempts < 1 {
		bad("MaxAttempts: %d must be at least 1", c.MaxAttempts)
	}
	if c.InboxRetention <= longest {
		bad("InboxRetention: %s must be longer than the longest retry delay %s, or a retried message could be applied twice",
			c.InboxRetention, longest)
	}
	if c.InboxCleanBatch < 1 {
		bad("InboxCleanBatch: %d must be at least 1", c.InboxCleanBatch)
	}
	if c.StopTimeout < 0 {
		bad("StopTimeout: %s is negative", c.StopTimeout)
	}
	if err := c.Tables.Validate(); err != nil {
		bad("Tables: %w", err)
	}
	return errors.Join(errs...)
}
