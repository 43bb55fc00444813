package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/syncworker/syncworker/internal/demo"
)

func init() {
	register(&command{name: "demo", summary: "run the whole flow locally: orders, relay, replica, projection, verify", run: runDemo})
}

func runDemo(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "demo", "--dsn DSN --amqp-url URL [flags]")
	// Defaults come from the environment after parsing, so --help never prints a password.
	dsn := fs.String("dsn", "", "MySQL server DSN, for example 'root:pw@tcp(127.0.0.1:3306)/'; the demo creates its databases (env SYNCWORKER_MYSQL_DSN)")
	url := fs.String("amqp-url", "", "RabbitMQ URL (env SYNCWORKER_AMQP_URL)")
	var cfg demo.Config
	fs.IntVar(&cfg.Orders, "orders", 2000, "orders to create (every 4th is then updated, every 10th deleted)")
	fs.IntVar(&cfg.Writers, "writers", 8, "goroutines writing orders")
	fs.StringVar(&cfg.DatabasePrefix, "db-prefix", "syncworker_demo", "databases <prefix>_orders, <prefix>_replica, <prefix>_projection")
	fs.StringVar(&cfg.Prefix, "prefix", "demo", "broker names: exchange <prefix>.orders, queues <prefix>.replica and <prefix>.projection")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the databases at the end (to look at them)")
	fs.BoolVar(&cfg.ExternalWorkers, "external-workers", false,
		"the relay and the replica consumer run as their own processes (docker-compose.yml); the demo only produces, projects, watches and verifies")
	fs.DurationVar(&cfg.Timeout, "timeout", 2*time.Minute, "how long to wait for every event to be applied after the last order is written")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// demo.Config takes 0 for its default; on the command line 0 would silently run 2000.
	if cfg.Orders < 1 || cfg.Writers < 1 {
		return usageErrorf("--orders %d and --writers %d must be at least 1", cfg.Orders, cfg.Writers)
	}
	if *dsn == "" {
		*dsn = env.getenv("SYNCWORKER_MYSQL_DSN")
	}
	if *url == "" {
		*url = env.getenv("SYNCWORKER_AMQP_URL")
	}
	if *dsn == "" || *url == "" {
		return usageErrorf("--dsn (or SYNCWORKER_MYSQL_DSN) and --amqp-url (or SYNCWORKER_AMQP_URL) are required")
	}
	cfg.ServerDSN, cfg.AMQPURL = *dsn, *url
	cfg.Progress, cfg.Terminal = env.stderr, isTerminal(env.stderr)
	cfg.Logger = demoLogger(env)
	res, err := demo.Run(ctx, cfg)
	if err != nil {
		return err
	}
	printVerifyReport(env.stdout, res.Verify)
	fmt.Fprintf(env.stdout, "projection: %d customers, %d with wrong totals\n", res.Projection.Customers, res.Projection.Wrong)
	for _, m := range res.Projection.Mismatched {
		fmt.Fprintf(env.stdout, "  %s\n", m)
	}
	fmt.Fprintf(env.stdout, "demo: %d orders, %d events written in %s (%.0f events/s); all applied after %s (%.0f events/s end to end)\n",
		res.Orders, res.Events, res.ProduceTime.Round(time.Millisecond), float64(res.Events)/res.ProduceTime.Seconds(),
		res.SyncTime.Round(time.Millisecond), float64(res.Events)/res.SyncTime.Seconds())
	if res.Drift() {
		if res.Verify.Drift() {
			return driftError{r: res.Verify}
		}
		return demoDriftError{res.Projection.Wrong}
	}
	return nil
}

type demoDriftError struct{ wrong int }

func (e demoDriftError) Error() string {
	return fmt.Sprintf("the projection has wrong totals for %d customers", e.wrong)
}
func (demoDriftError) ExitCode() int { return exitDrift }

// isTerminal reports whether w is a character device (progress is then redrawn in place).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// demoLogger shows the workers' warnings and errors, which would explain a stalled demo.
func demoLogger(env *cliEnv) *zap.Logger {
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(env.stderr), zap.WarnLevel))
}
