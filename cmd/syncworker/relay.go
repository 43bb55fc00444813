package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/internal/redact"
	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/publisher"
)

func init() {
	register(&command{name: "relay", summary: "publish committed outbox rows to RabbitMQ (runs until SIGTERM)", run: runRelay})
}

func runRelay(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "relay", "[flags]")
	// Defaults come from the environment after parsing, so --help never prints a password.
	dsn := fs.String("dsn", "", "MySQL DSN of the database holding the outbox (env SYNCWORKER_MYSQL_DSN)")
	url := fs.String("amqp-url", "", "RabbitMQ URL, amqp:// or amqps:// (env SYNCWORKER_AMQP_URL)")
	var cfg publisher.Config
	fs.StringVar(&cfg.Group, "group", "", "name of the group of relays sharing this outbox (default \"default\")")
	fs.StringVar(&cfg.MemberID, "member-id", "", "this relay's unique name in the group (default host-pid-random)")
	fs.IntVar(&cfg.Partitions, "partitions", 0, "partitions leased and published independently; the same for every relay of the group (default 16)")
	fs.IntVar(&cfg.Channels, "channels", 0, "AMQP channels publishing in parallel (default 4)")
	fs.IntVar(&cfg.Window, "window", 0, "unconfirmed publishes outstanding per channel (default 512)")
	fs.IntVar(&cfg.BatchSize, "batch-size", 0, "rows one sweep of a partition publishes (default 500)")
	order := fs.String("order", "strict", "after a failed message its key's later messages wait (strict) or go ahead (relaxed)")
	fs.IntVar(&cfg.KeyWindow, "key-window", 0, "unconfirmed messages of one partition key per sweep; 1 makes strict order exact even across failures (default 0: no bound)")
	fs.IntVar(&cfg.MaxAttempts, "max-attempts", 0, "failed publishes before a row moves to the dead table (default 10)")
	fs.DurationVar(&cfg.RetryInitial, "retry-initial", 0, "backoff after the first failure, doubling with jitter (default 1s)")
	fs.DurationVar(&cfg.RetryMax, "retry-max", 0, "longest backoff between attempts (default 5m)")
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", 0, "partition lease time: how long a dead relay's partitions wait (default 10s)")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", 0, "longest wait of an idle relay between looks for new rows (default 5ms)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 0, "how long SIGTERM waits for outstanding confirms (default 15s)")
	fs.StringVar(&cfg.AppID, "app-id", "", "AMQP app_id property of published messages (default \"syncworker\")")
	debug := fs.Bool("debug", false, "log at debug level")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dsn == "" {
		*dsn = env.getenv("SYNCWORKER_MYSQL_DSN")
	}
	if *url == "" {
		*url = env.getenv("SYNCWORKER_AMQP_URL")
	}
	var err error
	if cfg.Order, err = publisher.ParseOrder(*order); err != nil {
		return fmt.Errorf("--order: %w", err)
	}
	if *dsn == "" || *url == "" {
		return fmt.Errorf("--dsn (or SYNCWORKER_MYSQL_DSN) and --amqp-url (or SYNCWORKER_AMQP_URL) are required")
	}
	db, err := sql.Open("mysql", *dsn)
	if err != nil {
		return fmt.Errorf("open %s: %w", redact.DSN(*dsn), err)
	}
	defer db.Close()
	db.SetMaxOpenConns(64)
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(time.Minute)
	if err := checkSchema(ctx, db); err != nil {
		return err
	}
	log := newRelayLogger(env, *debug)
	defer log.Sync() //nolint:errcheck // best effort on exit
	cfg.DB = db
	cfg.AMQP = amqpx.DialConfig{URL: *url}
	cfg.Logger = log
	relay, err := publisher.New(cfg)
	if err != nil {
		return err
	}
	log.Info("relay configured", zap.String("mysql", redact.DSN(*dsn)), zap.String("amqp", redact.URL(*url)),
		zap.String("member", relay.MemberID()))
	return relay.Run(ctx)
}

// checkSchema fails fast when the outbox tables were never created: a relay that waits for
// them would look healthy while nothing can ever be published. An unreachable database is not
// an error here; the relay keeps retrying it.
func checkSchema(ctx context.Context, db *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	version, err := outbox.SchemaVersion(ctx, db, outbox.Tables{})
	var myErr *mysql.MySQLError
	switch {
	case errors.As(err, &myErr) && myErr.Number == 1146, err == nil && version == 0: // no such table
		return fmt.Errorf("the syncworker tables do not exist in this database: run 'syncworker migrate' first")
	}
	return nil
}

// newRelayLogger logs human-readable lines to the command's stderr.
func newRelayLogger(env *cliEnv, debug bool) *zap.Logger {
	level := zapcore.InfoLevel
	if debug {
		level = zapcore.DebugLevel
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(env.stderr), level)
	return zap.New(core)
}
