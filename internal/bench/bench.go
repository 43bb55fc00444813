// Package bench holds the scenarios of `syncworker bench`: each measures one part of the
// pipeline against the real MariaDB and RabbitMQ and returns a Result with stable fields.
package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/internal/redact"
)

// Options are the knobs every scenario reads; each uses the ones that apply to it.
type Options struct {
	DSN         string        // MySQL server DSN; scenarios create and drop their own database
	AMQPURL     string        // broker URL; scenarios create and delete their own entities
	Messages    int           // messages to move (ceiling, relay, apply)
	PayloadSize int           // bytes per payload
	Rate        int           // messages per second (latency)
	Writers     int           // concurrent writer transactions (latency, write)
	Duration    time.Duration // how long to run (latency)
	Channels    int           // publishing channels (ceiling; the relay's own setting for relay)
	Window      int           // outstanding confirms per channel
	Pairs       int           // ceiling/relay pairs the relay scenario measures (reports the median); 0 = 5
	RelayBinary string        // syncworker binary run as the relay process (relay, backlog)
	BatchSize   int           // subscriber group-commit batch for apply; 0 = the subscriber's default
	Notify      bool          // latency: writers call Relay.Notify after each commit
	Flush       time.Duration // subscriber FlushInterval (latency, apply); 0 = the subscriber's default
	// HandlerDelay is how long the latency scenario's handler takes per message.
	HandlerDelay time.Duration
	// Failing makes every Failing-th message of each latency writer go to an exchange that does
	// not exist (0: none): the relay retries them until they are dead, and they are neither
	// counted nor expected. It measures what such messages cost the others.
	Failing int
	Log     *zap.Logger
}

// Result is one scenario's outcome. Fields that do not apply to a scenario are omitted from
// its JSON object.
type Result struct {
	Scenario        string   `json:"scenario"`
	Messages        int      `json:"messages"`
	Seconds         float64  `json:"seconds"`
	MsgsPerS        float64  `json:"msgs_per_s"`
	CeilingMsgsPerS *float64 `json:"ceiling_msgs_per_s,omitempty"`
	Ratio           *float64 `json:"ratio,omitempty"`
	P50Ms           *float64 `json:"p50_ms,omitempty"`
	P95Ms           *float64 `json:"p95_ms,omitempty"`
	P99Ms           *float64 `json:"p99_ms,omitempty"`
	MaxMs           *float64 `json:"max_ms,omitempty"`
	Lost            *int     `json:"lost,omitempty"`
	PeakRSSMB       *float64 `json:"peak_rss_mb,omitempty"`
	// Note explains the numbers in a word or two, for example "group commit on".
	Note string `json:"note,omitempty"`
}

func ptr[T any](v T) *T { return &v }

// Environment describes the machine and the services a run measured.
type Environment struct {
	CPUs     int    `json:"cpus"`
	Go       string `json:"go"`
	MySQL    string `json:"mysql"`
	RabbitMQ string `json:"rabbitmq"`
	// MySQLRoundTripUs is the median time of a SELECT 1 on one connection, in µs: the unit
	// most figures here are made of, so runs on machines (or moments) of different speed can
	// be told apart.
	MySQLRoundTripUs float64 `json:"mysql_round_trip_us"`
}

// roundTripSamples is how many SELECT 1 the round-trip figure is the median of (~20 ms).
const roundTripSamples = 200

// DescribeEnvironment asks both services for their versions and times a MySQL round trip.
func DescribeEnvironment(ctx context.Context, o Options) (Environment, error) {
	env := Environment{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	db, err := sql.Open("mysql", o.DSN)
	if err != nil {
		return env, fmt.Errorf("open %s: %w", redact.DSN(o.DSN), err)
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&env.MySQL); err != nil {
		return env, fmt.Errorf("MySQL at %s: %w", redact.DSN(o.DSN), err)
	}
	rtt, err := mysqlRoundTrip(ctx, db)
	if err != nil {
		return env, fmt.Errorf("MySQL at %s: %w", redact.DSN(o.DSN), err)
	}
	env.MySQLRoundTripUs = float64(rtt) / float64(time.Microsecond)
	conn, err := amqpx.Dial(amqpx.DialConfig{URL: o.AMQPURL, Name: "syncworker-bench"})
	if err != nil {
		return env, err
	}
	defer conn.Close()
	env.RabbitMQ = fmt.Sprint(conn.Properties["version"])
	return env, nil
}

// mysqlRoundTrip returns the median duration of roundTripSamples SELECT 1 on one connection
// (the one VERSION() used, so no dial is timed).
func mysqlRoundTrip(ctx context.Context, db *sql.DB) (time.Duration, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	samples := make(latencies, roundTripSamples)
	var one int
	for i := range samples {
		start := time.Now()
		if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
			return 0, fmt.Errorf("time a round trip: %w", err)
		}
		samples[i] = time.Since(start)
	}
	return samples.sorted().percentile(50), nil
}

// WriteJSON prints one JSON object per line.
func WriteJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// WriteTable prints the environment and the results as an aligned table.
func WriteTable(w io.Writer, env Environment, results []Result) {
	fmt.Fprintf(w, "machine: %d CPUs, %s, MySQL %s, RabbitMQ %s; MySQL round trip %.0f µs (median SELECT 1)\n\n",
		env.CPUs, env.Go, env.MySQL, env.RabbitMQ, env.MySQLRoundTripUs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tmessages\tseconds\tmsgs/s\tceiling\tratio\tp50 ms\tp95 ms\tp99 ms\tmax ms\tlost\tpeak RSS MB\tnote\t")
	for _, r := range results {
		cells := []string{r.Scenario, fmt.Sprint(r.Messages), fmt.Sprintf("%.2f", r.Seconds), fmt.Sprintf("%.0f", r.MsgsPerS),
			fmtOpt(r.CeilingMsgsPerS, "%.0f"), fmtOpt(r.Ratio, "%.2f"), fmtOpt(r.P50Ms, "%.2f"), fmtOpt(r.P95Ms, "%.2f"),
			fmtOpt(r.P99Ms, "%.2f"), fmtOpt(r.MaxMs, "%.2f"), fmtOpt(r.Lost, "%d"), fmtOpt(r.PeakRSSMB, "%.1f"), r.Note}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	tw.Flush()
}

func fmtOpt[T any](v *T, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

// rate returns n per second of d, 0 for an empty duration.
func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// uniqueSuffix names a run's broker entities and database apart from any other run's.
func uniqueSuffix() string {
	return strconv.FormatInt(time.Now().UnixNano(), 36)
}
