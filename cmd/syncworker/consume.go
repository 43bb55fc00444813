package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.yaml.in/yaml/v3"

	"github.com/syncworker/syncworker/internal/redact"
	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/subscriber"
)

func init() {
	register(&command{name: "consume", summary: "apply row-sync events from a queue to this database, exactly once", run: runConsume})
}

// consumeFile is the --config YAML file of `syncworker consume`. Flags override its values.
//
//	queue: orders.replica
//	consumer_name: billing
//	concurrency: 4
//	prefetch: 256
//	batch_size: 32
//	flush_interval: 5ms
//	retry:
//	  delays: [1s, 10s, 1m, 10m]
//	  max_attempts: 5
//	inbox_retention: 168h
//	stop_timeout: 30s
//	row_sync:
//	  tables:
//	    - source: orders           # table named in the events
//	      target: orders_replica   # table in this database (default: source)
//	      key_columns: [id]
//	      columns: [status, total] # optional allow-list
type consumeFile struct {
	Queue          string        `yaml:"queue"`
	ConsumerName   string        `yaml:"consumer_name"`
	Concurrency    int           `yaml:"concurrency"`
	Prefetch       int           `yaml:"prefetch"`
	BatchSize      int           `yaml:"batch_size"`
	FlushInterval  time.Duration `yaml:"flush_interval"`
	InboxRetention time.Duration `yaml:"inbox_retention"`
	StopTimeout    time.Duration `yaml:"stop_timeout"`
	Retry          struct {
		Delays      []time.Duration `yaml:"delays"`
		MaxAttempts int             `yaml:"max_attempts"`
	} `yaml:"retry"`
	RowSync subscriber.RowSyncConfig `yaml:"row_sync"`
}

func loadConsumeFile(path string) (consumeFile, error) {
	var cf consumeFile
	if path == "" {
		return cf, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return cf, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cf); err != nil && !errors.Is(err, io.EOF) {
		return cf, fmt.Errorf("config %s: %w", path, err)
	}
	return cf, nil
}

func runConsume(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "consume", "--config FILE [flags]")
	configPath := fs.String("config", "", "YAML file with the row-sync table mappings, retry delays and the settings below")
	dsn := fs.String("dsn", env.getenv("SYNCWORKER_MYSQL_DSN"), "MySQL DSN of this service's database (env SYNCWORKER_MYSQL_DSN)")
	amqpURL := fs.String("amqp-url", env.getenv("SYNCWORKER_AMQP_URL"), "RabbitMQ URL (env SYNCWORKER_AMQP_URL)")
	queue := fs.String("queue", "", "queue to consume (declared by syncworker topology)")
	consumerName := fs.String("consumer-name", "", "inbox scope: a message id is applied once per consumer name")
	concurrency := fs.Int("concurrency", 0, "lanes applying in parallel (per-key order is kept); default 4")
	prefetch := fs.Int("prefetch", 0, "unacked deliveries the broker may send ahead; default 2*concurrency*batch size")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cf, err := loadConsumeFile(*configPath)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	override := func(name string, dst *string, v string) {
		if set[name] || *dst == "" {
			*dst = v
		}
	}
	override("queue", &cf.Queue, *queue)
	override("consumer-name", &cf.ConsumerName, *consumerName)
	if set["concurrency"] {
		cf.Concurrency = *concurrency
	}
	if set["prefetch"] {
		cf.Prefetch = *prefetch
	}
	var problems []error
	if *dsn == "" {
		problems = append(problems, errors.New("--dsn (or SYNCWORKER_MYSQL_DSN) is required"))
	}
	if *amqpURL == "" {
		problems = append(problems, errors.New("--amqp-url (or SYNCWORKER_AMQP_URL) is required"))
	}
	if len(cf.RowSync.Tables) == 0 {
		problems = append(problems, errors.New("the --config file maps no row_sync tables: there is nothing to apply"))
	}
	if err := errors.Join(problems...); err != nil {
		return err
	}

	log := consumeLogger(env)
	defer log.Sync() //nolint:errcheck // nothing to do about it at exit
	rs, err := subscriber.NewRowSync(cf.RowSync)
	if err != nil {
		return err
	}
	db, err := sql.Open("mysql", *dsn)
	if err != nil {
		return fmt.Errorf("open %s: %w", redact.DSN(*dsn), err)
	}
	defer db.Close()
	db.SetMaxOpenConns(max(cf.Concurrency, 4) + 2)
	if v, err := outbox.SchemaVersion(ctx, db, outbox.Tables{}); err != nil || v < 1 {
		return fmt.Errorf("%s has no syncworker schema (run 'syncworker migrate' first): %v", redact.DSN(*dsn), err)
	}
	sub, err := subscriber.New(db, subscriber.Config{
		AMQPURL:        *amqpURL,
		Queue:          cf.Queue,
		ConsumerName:   cf.ConsumerName,
		Handler:        rs.Handle,
		BatchHandler:   rs.HandleBatch,
		Concurrency:    cf.Concurrency,
		BatchSize:      cf.BatchSize,
		FlushInterval:  cf.FlushInterval,
		Prefetch:       cf.Prefetch,
		RetryDelays:    cf.Retry.Delays,
		MaxAttempts:    cf.Retry.MaxAttempts,
		InboxRetention: cf.InboxRetention,
		StopTimeout:    cf.StopTimeout,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	log.Info("starting consumer", zap.String("dsn", redact.DSN(*dsn)), zap.String("amqp", redact.URL(*amqpURL)))
	return sub.Run(ctx)
}

// consumeLogger logs JSON lines at info level to stderr.
func consumeLogger(env *cliEnv) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(env.stderr), zap.InfoLevel))
}
