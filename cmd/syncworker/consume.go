package main

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/syncworker/syncworker/internal/redact"
	"github.com/syncworker/syncworker/subscriber"
)

func init() {
	register(&command{name: "consume", summary: "apply row-sync events from a queue to this database, exactly once", run: runConsume})
}

func runConsume(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "consume", "--config FILE [flags]")
	need := needs{mysql: true, amqp: true, consume: true}
	b := bindSettings(fs, need)
	b.logFlags()
	b.str("http-listen", "address of /metrics, /healthz and /readyz, e.g. :9091; empty disables (http.listen, env SYNCWORKER_HTTP_LISTEN)", func(s *settings) *string { return &s.HTTP.Listen })
	b.str("queue", "queue to consume, declared by syncworker topology (consume.queue, env SYNCWORKER_CONSUME_QUEUE)", func(s *settings) *string { return &s.Consume.Queue })
	b.str("consumer-name", "inbox scope: a message id is applied once per consumer name (consume.consumer_name, env SYNCWORKER_CONSUMER_NAME)", func(s *settings) *string { return &s.Consume.ConsumerName })
	b.int("concurrency", "lanes applying in parallel; per-key order is kept (consume.concurrency; default 4)", func(s *settings) *int { return &s.Consume.Concurrency })
	b.int("prefetch", "unacked deliveries the broker may send ahead (consume.prefetch; default 2*concurrency*batch size)", func(s *settings) *int { return &s.Consume.Prefetch })
	b.int("batch-size", "deliveries committed in one transaction (consume.batch_size; default 32)", func(s *settings) *int { return &s.Consume.BatchSize })
	b.duration("flush-interval", "longest wait for a batch to fill once a lane has a delivery; 0 takes what queued during the last commit (consume.flush_interval; default 0s)", func(s *settings) *time.Duration { return &s.Consume.FlushInterval })
	b.duration("stop-timeout", "how long SIGTERM waits for in-flight batches (consume.stop_timeout; default 30s)", func(s *settings) *time.Duration { return &s.Consume.StopTimeout })
	s, env, err := b.parse(env, args, need)
	if err != nil {
		return err
	}
	return redactErr(consumeWith(ctx, env, s), s)
}

func consumeWith(ctx context.Context, env *cliEnv, s *settings) error {
	log := newLogger(env, s, "consume")
	defer log.Sync() //nolint:errcheck // nothing to do about it at exit
	reg := newRegistry()
	metrics := newConsumeMetrics(reg)
	c := s.Consume
	rsCfg := c.RowSync
	rsCfg.Metrics, rsCfg.Logger = metrics, log
	rs, err := subscriber.NewRowSync(rsCfg)
	if err != nil {
		return fmt.Errorf("consume.row_sync: %w", err)
	}
	db, err := openDB(s, log, utcSessionByDefault)
	if err != nil {
		return err
	}
	defer db.Close()
	keepPool(db, max(c.Concurrency, 4)+2)
	reg.MustRegister(dbStatsCollector(db))
	if err := checkSchema(ctx, db, s); err != nil {
		return err
	}
	tc, err := amqpTLS(s)
	if err != nil {
		return err
	}
	cfg := c.subscriberConfig()
	cfg.AMQPURL, cfg.AMQPTLS, cfg.Handler, cfg.BatchHandler = s.AMQP.URL, tc, rs.Handle, rs.HandleBatch
	cfg.Metrics, cfg.Logger = metrics, log
	sub, err := subscriber.New(db, cfg)
	if err != nil {
		return err
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "syncworker_consume_consuming",
		Help: "1 while the subscriber is connected and consuming its queue, else 0."}, func() float64 {
		if sub.Consuming() {
			return 1
		}
		return 0
	}))
	ready := newReadiness()
	ready.add("database", db.PingContext)
	probe := newBrokerProbe(s, "syncworker consume readiness")
	defer probe.close()
	ready.add("broker", probe.check) // a consumer cut off from the broker still looks consuming
	ready.add("consumer", func(context.Context) error {
		if !sub.Consuming() {
			if err := sub.Err(); err != nil {
				return fmt.Errorf("not consuming %s: %w", c.Queue, redactErr(err, s))
			}
			return fmt.Errorf("not consuming %s yet", c.Queue)
		}
		return nil
	})
	log.Info("starting consumer", zap.String("mysql", redact.DSN(s.MySQL.DSN)), zap.String("amqp", redact.URL(s.AMQP.URL)),
		zap.String("queue", c.Queue), zap.String("consumer", c.ConsumerName))
	return runWithOps(ctx, s, reg, ready, log, sub.Run)
}
