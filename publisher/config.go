package publisher

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/outbox"
)

// DefaultPollInterval is Config.PollInterval's default.
const DefaultPollInterval = 5 * time.Millisecond

// Order says what happens to the later messages of a partition key when one fails.
type Order int

const (
	// OrderStrict (the default) holds back every later message of the key until the failed one
	// is published or dead.
	OrderStrict Order = iota
	// OrderRelaxed lets later messages of the key go ahead while the failed one waits.
	OrderRelaxed
)

// ParseOrder reads "strict" or "relaxed".
func ParseOrder(s string) (Order, error) {
	switch s {
	case "strict", "":
		return OrderStrict, nil
	case "relaxed":
		return OrderRelaxed, nil
	}
	return 0, fmt.Errorf("order %q: want strict or relaxed", s)
}

func (o Order) String() string {
	if o == OrderRelaxed {
		return "relaxed"
	}
	return "strict"
}

// Config configures a Relay. DB and AMQP.URL are required; every other field has a default.
type Config struct {
	// DB is the database holding the outbox. Required. The relay uses up to about
	// Partitions+3 connections at once; let db keep that many idle too (SetMaxIdleConns; the
	// default of 2 closes and dials connections all the time).
	DB *sql.DB
	// AMQP says how to reach the broker. URL is required.
	AMQP amqpx.DialConfig
	// Tables names the outbox, dead, lease and member tables. Empty names take defaults.
	Tables outbox.Tables
	// Group names the set of cooperating relays sharing one outbox. Default "default". Every
	// relay of a group must use the same Partitions (the lease rows are keyed by both).
	Group string
	// MemberID identifies this relay among the group. Default host-pid-random; must be unique:
	// a relay started with the id of another running relay holds no partitions until that one
	// stops (see Relay.MemberConflict), because each process also has an instance id of its own.
	MemberID string
	// Partitions is the number of partitions (hash ranges of partition keys) leased and
	// published independently. Default 16.
	Partitions int
	// Channels is the number of AMQP channels publishing in parallel. Default 4.
	Channels int
	// Window bounds the unconfirmed publishes outstanding on one channel. Default 512.
	Window int
	// BatchSize is the most rows one sweep of a partition publishes. Default 256: with the
	// default 16 partitions that is twice the default 4 channels' windows of 512, so a drain
	// still keeps every window full, without holding four times their size in memory.
	BatchSize int
	// MaxBatchBytes stops a sweep adding rows once their payloads reach this size. Default 8 MiB.
	MaxBatchBytes int
	// MaxScan bounds the rows a sweep reads to find BatchSize publishable ones (rows waiting for
	// a retry, and in strict order the later rows of their keys, are skipped). Default 10*BatchSize.
	MaxScan int
	// Order is OrderStrict (default) or OrderRelaxed.
	Order Order
	// KeyWindow bounds the unconfirmed messages of one partition key in a sweep; 0 (default)
	// means no bound. Publishing is pipelined, so with no bound a message already in flight
	// when an earlier one of its key fails reaches the broker before that one (strict order
	// then publishes it again after it, so the last copy is in order). KeyWindow 1 makes
	// strict order exact, at the price of one message per key per sweep.
	KeyWindow int
	// MaxAttempts is the number of failed publishes after which a row moves to the dead
	// table. Default 10.
	MaxAttempts int
	// RetryInitial is the backoff after the first failure; it doubles up to RetryMax, with
	// ±50% jitter. Defaults 1s and 5m.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// LeaseTTL is how long a partition lease lasts without renewal: the longest a dead relay's
	// partitions wait for another relay. Default 10s.
	LeaseTTL time.Duration
	// RenewInterval is how often leases are renewed and rebalanced. Default LeaseTTL/4.
	RenewInterval time.Duration
	// PollInterval is the longest an idle relay waits between two looks for new rows (one
	// primary-key probe each) during its first second without new rows; after activity it
	// starts at 1ms and doubles. Default 5ms.
	PollInterval time.Duration
	// IdlePollInterval is the longest wait between two looks once a second passed without new
	// rows: the first row after a lull may wait this long, and a quiet relay costs the relay
	// and the database a fifth of what looking every PollInterval would. Default 25ms, or
	// PollInterval when that is longer; at least PollInterval.
	IdlePollInterval time.Duration
	// SafetySweep is how often a partition reads its range itself at the least, even while
	// idle or served by hand-offs, which bounds the delay of rows that commit long after rows
	// with higher ids. Default 1s.
	SafetySweep time.Duration
	// LateCommitWindow is how far behind the newest seen id the watcher keeps looking, so
	// rows committing out of id order within this time are noticed at once. Default 500ms.
	LateCommitWindow time.Duration
	// ConfirmTimeout closes a channel whose confirms take longer; its unconfirmed rows are
	// retried. Default 30s.
	ConfirmTimeout time.Duration
	// ShutdownTimeout bounds the wait for outstanding confirms when Run's ctx ends. Default 15s.
	ShutdownTimeout time.Duration
	// StatsInterval is how often backlog and oldest age are sampled for Metrics (a COUNT(*)
	// of the outbox). Default 15s; negative disables.
	StatsInterval time.Duration
	// AppID is the AMQP app_id property of every message. Default "syncworker".
	AppID string
	// Logger; nil means zap.NewNop().
	Logger *zap.Logger
	// Metrics; nil means NopMetrics.
	Metrics Metrics
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	c.Tables = c.Tables.WithDefaults()
	if c.Group == "" {
		c.Group = "default"
	}
	if c.MemberID == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		c.MemberID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
	}
	def(&c.Partitions, 16)
	def(&c.Channels, 4)
	def(&c.Window, 512)
	def(&c.BatchSize, 256)
	def(&c.MaxBatchBytes, 8<<20)
	def(&c.MaxScan, 10*c.BatchSize)
	def(&c.MaxAttempts, 10)
	defDur(&c.RetryInitial, time.Second)
	defDur(&c.RetryMax, 5*time.Minute)
	defDur(&c.LeaseTTL, 10*time.Second)
	defDur(&c.RenewInterval, c.LeaseTTL/4)
	defDur(&c.PollInterval, DefaultPollInterval)
	defDur(&c.IdlePollInterval, max(25*time.Millisecond, c.PollInterval))
	defDur(&c.SafetySweep, time.Second)
	defDur(&c.LateCommitWindow, 500*time.Millisecond)
	defDur(&c.ConfirmTimeout, 30*time.Second)
	defDur(&c.ShutdownTimeout, 15*time.Second)
	defDur(&c.StatsInterval, 15*time.Second)
	if c.AppID == "" {
		c.AppID = "syncworker"
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Metrics == nil {
		c.Metrics = NopMetrics{}
	}
}

// Validate returns every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DB == nil {
		bad("DB is required")
	}
	if c.AMQP.URL == "" {
		bad("AMQP.URL is required")
	}
	if err := c.Tables.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("Tables: %w", err))
	}
	if len(c.Group) > 200 || len(c.MemberID) > 255 {
		bad("Group (at most 200 bytes) or MemberID (at most 255 bytes) is too long")
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"Partitions", c.Partitions}, {"Channels", c.Channels}, {"Window", c.Window}, {"BatchSize", c.BatchSize},
		{"MaxBatchBytes", c.MaxBatchBytes}, {"MaxScan", c.MaxScan}, {"MaxAttempts", c.MaxAttempts},
	} {
		if f.v <= 0 {
			bad("%s: %d must be positive", f.name, f.v)
		}
	}
	if c.KeyWindow < 0 {
		bad("KeyWindow: %d is negative", c.KeyWindow)
	}
	if c.Partitions > 4096 {
		bad("Partitions: %d is more than 4096", c.Partitions)
	}
	if c.MaxScan < c.BatchSize {
		bad("MaxScan: %d is smaller than BatchSize %d", c.MaxScan, c.BatchSize)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"RetryInitial", c.RetryInitial}, {"RetryMax", c.RetryMax}, {"LeaseTTL", c.LeaseTTL},
		{"RenewInterval", c.RenewInterval}, {"PollInterval", c.PollInterval},
		{"IdlePollInterval", c.IdlePollInterval}, {"SafetySweep", c.SafetySweep},
		{"LateCommitWindow", c.LateCommitWindow}, {"ConfirmTimeout", c.ConfirmTimeout},
		{"ShutdownTimeout", c.ShutdownTimeout},
	} {
		if f.d <= 0 {
			bad("%s: %s must be positive", f.name, f.d)
		}
	}
	if c.RetryMax < c.RetryInitial {
		bad("RetryMax: %s is shorter than RetryInitial %s", c.RetryMax, c.RetryInitial)
	}
	if c.RenewInterval > 0 && c.LeaseTTL > 0 && c.RenewInterval*2 > c.LeaseTTL {
		bad("RenewInterval: %s must be at most half of LeaseTTL %s", c.RenewInterval, c.LeaseTTL)
	}
	if c.IdlePollInterval < c.PollInterval {
		bad("IdlePollInterval: %s is shorter than PollInterval %s", c.IdlePollInterval, c.PollInterval)
	}
	if c.Order != OrderStrict && c.Order != OrderRelaxed {
		bad("Order: %d is neither strict nor relaxed", c.Order)
	}
	return errors.Join(errs...)
}

// LeaseGroup is the lease_group value of the lease rows of relays in group with partitions
// partitions. The rows are keyed by both, so relays configured with different counts never
// believe they own the same partition number of different ranges. Tools that read the lease
// table (status) use it to find a group's rows.
func LeaseGroup(group string, partitions int) string { return fmt.Sprintf("%s/%d", group, partitions) }

func (c Config) leaseGroup() string { return LeaseGroup(c.Group, c.Partitions) }
