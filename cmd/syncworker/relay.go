package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/syncworker/syncworker/internal/redact"
	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/publisher"
)

func init() {
	register(&command{name: "relay", summary: "publish committed outbox rows to RabbitMQ (runs until SIGTERM)", run: runRelay})
}

func runRelay(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "relay", "[--config FILE] [flags]")
	need := needs{mysql: true, amqp: true}
	b := bindSettings(fs, need)
	b.logFlags()
	b.str("http-listen", "address of /metrics, /healthz and /readyz, e.g. :9090; empty disables (http.listen, env SYNCWORKER_HTTP_LISTEN)", func(s *settings) *string { return &s.HTTP.Listen })
	b.str("group", "name of the group of relays sharing this outbox (relay.group, env SYNCWORKER_RELAY_GROUP; default \"default\")", func(s *settings) *string { return &s.Relay.Group })
	b.str("member-id", "this relay's unique name in the group (relay.member_id, env SYNCWORKER_RELAY_MEMBER_ID; default host-pid-random)", func(s *settings) *string { return &s.Relay.MemberID })
	b.int("partitions", "partitions leased and published independently; the same for every relay of the group (relay.partitions; default 16)", func(s *settings) *int { return &s.Relay.Partitions })
	b.int("channels", "AMQP channels publishing in parallel (relay.channels; default 4)", func(s *settings) *int { return &s.Relay.Channels })
	b.int("window", "unconfirmed publishes outstanding per channel (relay.window; default 512)", func(s *settings) *int { return &s.Relay.Window })
	b.int("batch-size", "rows one sweep of a partition publishes (relay.batch_size; default 256)", func(s *settings) *int { return &s.Relay.BatchSize })
	b.str("order", "after a failed message its key's later messages wait (strict) or go ahead (relaxed) (relay.order; default strict)", func(s *settings) *string { return &s.Relay.Order })
	b.int("key-window", "unconfirmed messages of one partition key per sweep; 1 makes strict order exact even across failures (relay.key_window; default 0: no bound)", func(s *settings) *int { return &s.Relay.KeyWindow })
	b.int("max-attempts", "failed publishes before a row moves to the dead table (relay.max_attempts; default 10)", func(s *settings) *int { return &s.Relay.MaxAttempts })
	b.duration("retry-initial", "backoff after the first failure, doubling with jitter (relay.retry_initial; default 1s)", func(s *settings) *time.Duration { return &s.Relay.RetryInitial })
	b.duration("retry-max", "longest backoff between attempts (relay.retry_max; default 5m)", func(s *settings) *time.Duration { return &s.Relay.RetryMax })
	b.duration("lease-ttl", "partition lease time: how long a dead relay's partitions wait (relay.lease_ttl; default 10s)", func(s *settings) *time.Duration { return &s.Relay.LeaseTTL })
	b.duration("poll-interval", "longest wait of an idle relay between looks for new rows (relay.poll_interval; default 5ms)", func(s *settings) *time.Duration { return &s.Relay.PollInterval })
	b.duration("idle-poll-interval", "longest wait between looks once a second passed without new rows (relay.idle_poll_interval; default 25ms or poll-interval if longer)", func(s *settings) *time.Duration { return &s.Relay.IdlePollInterval })
	b.duration("confirm-timeout", "longest wait for a publish's confirm; then its channel is closed and its rows retried (relay.confirm_timeout; default 30s)", func(s *settings) *time.Duration { return &s.Relay.ConfirmTimeout })
	b.duration("shutdown-timeout", "how long SIGTERM waits for outstanding confirms (relay.shutdown_timeout; default 15s)", func(s *settings) *time.Duration { return &s.Relay.ShutdownTimeout })
	b.duration("stats-interval", "how often the outbox backlog gauges are sampled (relay.stats_interval; default 5s)", func(s *settings) *time.Duration { return &s.Relay.StatsInterval })
	b.str("app-id", "AMQP app_id property of published messages (relay.app_id; default \"syncworker\")", func(s *settings) *string { return &s.Relay.AppID })
	debug := fs.Bool("debug", false, "log at debug level (same as --log-level debug)")
	s, env, err := b.parse(env, args, need)
	if err != nil {
		return err
	}
	if *debug {
		s.Log.Level = "debug"
	}
	return redactErr(relayWith(ctx, env, s), s)
}

// relayConfig maps the settings to the publisher's Config.
func relayConfig(s *settings, db *sql.DB) (publisher.Config, error) {
	order, err := publisher.ParseOrder(s.Relay.Order)
	if err != nil {
		return publisher.Config{}, err
	}
	dc, err := dialConfig(s, "")
	if err != nil {
		return publisher.Config{}, err
	}
	r := s.Relay
	return publisher.Config{
		DB: db, AMQP: dc, Group: r.Group, MemberID: r.MemberID, Partitions: r.Partitions,
		Channels: r.Channels, Window: r.Window, BatchSize: r.BatchSize, Order: order, KeyWindow: r.KeyWindow,
		MaxAttempts: r.MaxAttempts, RetryInitial: r.RetryInitial, RetryMax: r.RetryMax, LeaseTTL: r.LeaseTTL,
		PollInterval: r.PollInterval, IdlePollInterval: r.IdlePollInterval, ConfirmTimeout: r.ConfirmTimeout, ShutdownTimeout: r.ShutdownTimeout,
		StatsInterval: r.StatsInterval, AppID: r.AppID,
	}, nil
}

func relayWith(ctx context.Context, env *cliEnv, s *settings) error {
	log := newLogger(env, s, "relay")
	defer log.Sync() //nolint:errcheck // best effort on exit
	db, err := openDB(s, log)
	if err != nil {
		return err
	}
	defer db.Close()
	keepPool(db, 64)
	if err := checkSchema(ctx, db, s); errors.As(err, &dbUnavailableError{}) {
		// A relay may start before its database (or its grants); it keeps trying.
		log.Warn("the database is not available; the relay keeps trying", zap.Error(redactErr(err, s)))
	} else if err != nil {
		return err
	}
	cfg, err := relayConfig(s, db)
	if err != nil {
		return err
	}
	reg := newRegistry()
	reg.MustRegister(dbStatsCollector(db))
	cfg.Metrics = newRelayMetrics(reg)
	cfg.Logger = log
	relay, err := publisher.New(cfg)
	if err != nil {
		return err
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncworker_relay_partitions_owned",
		Help: "Partitions this relay holds a lease on and publishes."}, func() float64 { return float64(len(relay.Owned())) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncworker_relay_member_conflict",
		Help: "1 while another relay process holds this relay's member id, so this one publishes nothing."}, func() float64 {
		if relay.MemberConflict() != nil {
			return 1
		}
		return 0
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncworker_relay_broker_blocked",
		Help: "1 while the broker blocks this relay's publishing (connection.blocked: a memory or disk alarm)."}, func() float64 {
		if relay.BrokerBlocked() {
			return 1
		}
		return 0
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncworker_relay_other_group_members",
		Help: "Live relays of other lease groups (another relay.group or relay.partitions) on this outbox; each group publishes every row, so it must be 0."},
		func() float64 {
			n := 0
			for _, members := range relay.OtherGroups() {
				n += members
			}
			return float64(n)
		}))
	ready := newReadiness()
	ready.add("database", db.PingContext)
	probe := newBrokerProbe(s, "syncworker relay readiness")
	defer probe.close()
	ready.add("broker", probe.check)
	ready.add("leases", func(ctx context.Context) error {
		if err := relay.MemberConflict(); err != nil {
			return err
		}
		if len(relay.Owned()) > 0 {
			return nil
		}
		// A relay without a partition is still useful when every partition is held by a live
		// relay of the group (more relays than partitions): it is a standby.
		leases, err := readLeases(ctx, db, leaseGroup(s), s.Relay.Partitions)
		if err != nil {
			return err
		}
		held := 0
		for _, l := range leases {
			if l.Owner != "" && l.Valid {
				held++
			}
		}
		if held < s.Relay.Partitions {
			return fmt.Errorf("this relay holds no partition and %d of %d are unleased", s.Relay.Partitions-held, s.Relay.Partitions)
		}
		return nil
	})
	log.Info("relay configured", zap.String("mysql", redact.DSN(s.MySQL.DSN)), zap.String("amqp", redact.URL(s.AMQP.URL)),
		zap.String("member", relay.MemberID()), zap.String("instance", relay.Instance()), zap.Int("partitions", s.Relay.Partitions))
	return runWithOps(ctx, s, reg, ready, log, relay.Run)
}

// leaseGroup is the lease_group of the configured relays' lease rows.
func leaseGroup(s *settings) string { return publisher.LeaseGroup(s.Relay.Group, s.Relay.Partitions) }

// dbUnavailableError is a database that did not answer, or answered and refused us
// (credentials, privileges), as opposed to one without syncworker's tables.
type dbUnavailableError struct{ err error }

func (e dbUnavailableError) Error() string { return e.err.Error() }
func (e dbUnavailableError) Unwrap() error { return e.err }

// checkSchema fails fast when the syncworker tables were never created, or miss a migration
// this binary needs: a relay that waits for them would look healthy while nothing can ever be
// published. Only a server that answered is blamed on the schema; otherwise the error is a
// dbUnavailableError.
func checkSchema(ctx context.Context, db *sql.DB, s *settings) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	version, err := outbox.SchemaVersion(ctx, db, outbox.Tables{})
	var myErr *mysql.MySQLError
	switch {
	case errors.As(err, &myErr) && myErr.Number == 1146, err == nil && version == 0: // no such table
		return fmt.Errorf("%s has no syncworker tables: run 'syncworker migrate' first", redact.DSN(s.MySQL.DSN))
	case errors.As(err, &myErr): // the server answered, and refused
		return dbUnavailableError{err}
	case err != nil:
		// pingDB explains a connection failure (TLS included) better than the query did.
		if perr := pingDB(ctx, db, s); perr != nil {
			err = perr
		}
		return dbUnavailableError{fmt.Errorf("could not reach the database: %w", err)}
	}
	if all, err := outbox.Migrations(); err == nil && version < all[len(all)-1].Version {
		return fmt.Errorf("the syncworker tables are at schema version %d and this syncworker needs version %d: run 'syncworker migrate' first",
			version, all[len(all)-1].Version)
	}
	return nil
}
