package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/syncworker/syncworker/internal/bench"
)

func init() {
	register(&command{name: "bench", summary: "measure throughput and latency against the real services", run: runBench})
}

// benchScenarios maps a scenario name to its run function, in the order `all` runs them.
// relay needs the ceiling of the same run, so `all` keeps it after ceiling.
var benchScenarios = []struct {
	name string
	help string
	run  func(ctx context.Context, o bench.Options, prior []bench.Result) ([]bench.Result, error)
}{
	{"ceiling", "broker-only confirmed publishing: the limit the relay is held against", func(ctx context.Context, o bench.Options, _ []bench.Result) ([]bench.Result, error) {
		r, err := bench.Ceiling(ctx, o)
		return []bench.Result{r}, err
	}},
	{"relay", "time a relay process draining a pre-filled outbox; ratio to ceiling (measured first if not in this run)", func(ctx context.Context, o bench.Options, prior []bench.Result) ([]bench.Result, error) {
		return bench.Relay(ctx, o, prior)
	}},
	{"backlog", "relay peak RSS and rate at a small (messages/2) and a large (10 x messages) backlog", func(ctx context.Context, o bench.Options, _ []bench.Result) ([]bench.Result, error) {
		return bench.Backlog(ctx, o)
	}},
	{"latency", "commit-to-handler latency at a steady rate from concurrent writers, relay and subscriber running", func(ctx context.Context, o bench.Options, _ []bench.Result) ([]bench.Result, error) {
		r, err := bench.Latency(ctx, o)
		return []bench.Result{r}, err
	}},
	{"apply", "subscriber applying row-sync events with the inbox, group commit on and off", func(ctx context.Context, o bench.Options, _ []bench.Result) ([]bench.Result, error) {
		return bench.Apply(ctx, o)
	}},
	{"write", "what outbox.Write adds to a business transaction (1 and 10 messages)", func(ctx context.Context, o bench.Options, _ []bench.Result) ([]bench.Result, error) {
		return bench.Write(ctx, o)
	}},
}

func runBench(ctx context.Context, env *cliEnv, args []string) error {
	var names []string
	for _, s := range benchScenarios {
		names = append(names, s.name)
	}
	fs := newFlagSet(env, "bench", "SCENARIO [flags]\n\nScenarios: "+strings.Join(names, ", ")+", all")
	o := bench.Options{}
	// Defaults come from the environment after parsing, so --help never prints a password.
	fs.StringVar(&o.DSN, "dsn", "",
		"MySQL server DSN; each scenario creates and drops its own database (env SYNCWORKER_MYSQL_DSN, else root@tcp(127.0.0.1:3306)/)")
	fs.StringVar(&o.AMQPURL, "amqp-url", "",
		"RabbitMQ URL (env SYNCWORKER_AMQP_URL, else amqp://guest:guest@127.0.0.1:5672/)")
	fs.IntVar(&o.Messages, "messages", 20000, "messages per scenario (ceiling, relay, apply; backlog drains messages/2 and 10 x messages); write runs messages/10 rounds, 200 to 2000")
	fs.IntVar(&o.PayloadSize, "payload", 256, "payload bytes per message")
	fs.IntVar(&o.Rate, "rate", 1000, "messages per second (latency)")
	fs.IntVar(&o.Writers, "writers", 8, "concurrent writer transactions (latency)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to run (latency)")
	fs.IntVar(&o.Channels, "channels", 4, "publishing channels (ceiling, and the relay's in relay, backlog, latency)")
	fs.IntVar(&o.Window, "window", 512, "outstanding publisher confirms per channel (ceiling, and the relay's in relay, backlog, latency; the relay's default)")
	fs.IntVar(&o.Pairs, "pairs", 5, "ceiling/relay pairs the relay scenario measures; it reports the pair with the median ratio")
	fs.BoolVar(&o.Notify, "notify", false, "latency: writers call Relay.Notify after each commit (an embedded relay); default off, a relay in its own process polls")
	fs.DurationVar(&o.Flush, "flush-interval", 0, "subscriber FlushInterval for latency and apply (default: the subscriber's, 0: no wait)")
	fs.DurationVar(&o.HandlerDelay, "handler-delay", 0, "latency: the subscriber's handler takes this long per message (a handler that waits on something); default 0")
	fs.IntVar(&o.Failing, "failing", 0, "latency: every Nth message of each writer goes to an exchange that does not exist (retried until dead, not counted), to measure what failing messages cost the others; 0 none, else at least 2")
	fs.IntVar(&o.BatchSize, "batch", 0, "subscriber group-commit batch for apply (default: the subscriber's, 32)")
	self, _ := os.Executable()
	fs.StringVar(&o.RelayBinary, "relay-binary", self,
		"syncworker binary run as the relay process (relay, backlog); empty runs the relay in-process (for profiling; no peak RSS)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the bench process to this file")
	memProfile := fs.String("memprofile", "", "write an allocation profile of the bench process to this file")
	jsonOut := fs.Bool("json", false, "print one JSON object per scenario (and one for the environment) instead of a table")
	positional, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(positional) == 0 {
		fs.Usage()
		return errUsage
	}
	if len(positional) > 1 {
		return usageErrorf("unexpected argument %q: bench runs one SCENARIO", positional[1])
	}
	scenario := positional[0]
	if o.DSN == "" {
		o.DSN = envOr(env, "SYNCWORKER_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/")
	}
	if o.AMQPURL == "" {
		o.AMQPURL = envOr(env, "SYNCWORKER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
	}
	if o.BatchSize < 0 || o.Flush < 0 || o.HandlerDelay < 0 {
		return usageErrorf("--batch, --flush-interval and --handler-delay must not be negative")
	}
	if o.Failing < 0 || o.Failing == 1 {
		return usageErrorf("--failing %d: want 0 (no failing messages) or N of at least 2 (every Nth message fails)", o.Failing)
	}
	if o.Messages <= 0 || o.PayloadSize < 0 || o.Rate <= 0 || o.Writers <= 0 || o.Channels <= 0 || o.Window <= 0 || o.Duration <= 0 || o.Pairs <= 0 {
		return usageErrorf("--messages, --rate, --writers, --channels, --window, --duration and --pairs must be positive, --payload not negative")
	}
	var run []int
	for i, s := range benchScenarios {
		if scenario == "all" || scenario == s.name {
			run = append(run, i)
		}
	}
	if len(run) == 0 {
		sort.Strings(names)
		return usageErrorf("unknown scenario %q (want one of %s, all)", scenario, strings.Join(names, ", "))
	}
	envInfo, err := bench.DescribeEnvironment(ctx, o)
	if err != nil {
		return err
	}
	if *jsonOut {
		bench.WriteJSON(env.stdout, envInfo) //nolint:errcheck // stdout
	}
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	if *memProfile != "" {
		runtime.MemProfileRate = 64 << 10
		defer writeMemProfile(env, *memProfile)
	}
	var results []bench.Result
	for _, i := range run {
		s := benchScenarios[i]
		if !*jsonOut {
			fmt.Fprintf(env.stderr, "running %s ...\n", s.name)
		}
		rs, err := s.run(ctx, o, results)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		for _, r := range rs {
			if *jsonOut {
				bench.WriteJSON(env.stdout, r) //nolint:errcheck // stdout
			}
		}
		results = append(results, rs...)
	}
	if !*jsonOut {
		bench.WriteTable(env.stdout, envInfo, results)
	}
	return nil
}

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// writeMemProfile writes the allocations since start (alloc_space / alloc_objects in pprof).
func writeMemProfile(env *cliEnv, path string) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "--memprofile: %v\n", err)
	}
}

// envOr returns the environment variable name, or def when it is empty.
func envOr(env *cliEnv, name, def string) string {
	if v := env.getenv(name); v != "" {
		return v
	}
	return def
}
