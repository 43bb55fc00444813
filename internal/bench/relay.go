package bench

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/publisher"
)

// defaultRelayPairs is how many ceiling/relay pairs the relay scenario measures unless
// o.Pairs says otherwise. On a small shared machine one pair's ratio spreads widely (0.53 to
// 0.92 for one binary in one session, 0.62 to 0.98 in another, 0.53 to 1.29 in a third), so
// the scenario reports the pair with the median ratio and lists every pair's ratio in the
// note; the median of five moves less with one odd pair than the median of three did.
const defaultRelayPairs = 5

// Relay measures o.Pairs interleaved pairs of a ceiling and a relay drain: o.Messages
// outbox rows are pre-filled (not timed), then a relay process drains them until the sink
// consumed all of them. The relay runs as a child process (`syncworker relay`, o.RelayBinary)
// with the bench's channel count and confirm window, so its peak RSS (VmHWM, read from /proc
// just before it is stopped) is the relay's alone, without the pre-fill or the sink. It
// returns the pair with the median ratio, with that pair's ceiling first when prior has no
// ceiling of its own (the scenario run alone).
func Relay(ctx context.Context, o Options, prior []Result) ([]Result, error) {
	type pair struct {
		ceiling, relay Result
		ratio          float64
	}
	n := o.Pairs
	if n == 0 {
		n = defaultRelayPairs
	}
	var pairs []pair
	ratios := make([]string, 0, n)
	for range n {
		c, err := Ceiling(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("ceiling: %w", err)
		}
		r, err := relayDrain(ctx, o, o.Messages)
		if err != nil {
			return nil, err
		}
		p := pair{ceiling: c, relay: r, ratio: r.MsgsPerS / c.MsgsPerS}
		pairs = append(pairs, p)
		ratios = append(ratios, fmt.Sprintf("%.2f", p.ratio))
	}
	slices.SortFunc(pairs, func(a, b pair) int { return cmp.Compare(a.ratio, b.ratio) })
	median := pairs[len(pairs)/2]
	r := median.relay
	r.Scenario = "relay"
	r.CeilingMsgsPerS, r.Ratio = ptr(median.ceiling.MsgsPerS), ptr(median.ratio)
	r.Note = fmt.Sprintf("median of %d ceiling/relay pairs, ratios %s in run order; %s",
		n, strings.Join(ratios, " / "), r.Note)
	var out []Result
	if _, ok := findResult(prior, "ceiling"); !ok {
		out = append(out, median.ceiling)
	}
	return append(out, r), nil
}

// Backlog drains a small (o.Messages/2, 10,000 by default) and a large (10 × o.Messages,
// 200,000) backlog with a fresh relay process each and reports both, to show that the relay's
// memory does not grow with the backlog (promise 6).
func Backlog(ctx context.Context, o Options) ([]Result, error) {
	small, err := relayDrain(ctx, o, max(1, o.Messages/2))
	if err != nil {
		return nil, err
	}
	small.Scenario = "backlog-small"
	large, err := relayDrain(ctx, o, 10*o.Messages)
	if err != nil {
		return nil, err
	}
	large.Scenario = "backlog-large"
	if small.PeakRSSMB != nil && large.PeakRSSMB != nil {
		large.Note += fmt.Sprintf(", peak RSS %+.0f%% vs %d rows", 100*(*large.PeakRSSMB / *small.PeakRSSMB - 1), small.Messages)
	}
	return []Result{small, large}, nil
}

// relayDrain measures one relay process draining n pre-filled rows.
func relayDrain(ctx context.Context, o Options, n int) (Result, error) {
	suffix := uniqueSuffix()
	db, dsn, cleanup, err := benchDatabase(ctx, o.DSN, "swbench_relay_"+suffix)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	s, err := newSink(ctx, o.AMQPURL, "relay."+suffix, n)
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	if err := prefill(ctx, db, n, o.PayloadSize, s.Exchange, s.RoutingKey); err != nil {
		return Result{}, err
	}

	if o.RelayBinary == "" {
		return relayInProcess(ctx, o, db, s, n)
	}
	// Secrets travel in the environment, not on the command line where ps shows them.
	cmd := exec.CommandContext(ctx, o.RelayBinary, "relay", "--channels", strconv.Itoa(o.Channels),
		"--window", strconv.Itoa(o.Window), "--member-id", "bench-"+suffix)
	cmd.Env = append(os.Environ(), "SYNCWORKER_MYSQL_DSN="+dsn, "SYNCWORKER_AMQP_URL="+o.AMQPURL)
	// Interrupting the bench stops the relay as an operator would; killed only if it hangs.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, left: 64 << 10}
	cpu := startCPUUse()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("start relay %s: %w", o.RelayBinary, err)
	}
	cpu.track("relay", cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() error {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have exited already
		select {
		case err := <-exited:
			return err
		case <-time.After(30 * time.Second):
			cmd.Process.Kill() //nolint:errcheck // it would not stop
			return <-exited
		}
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- s.Wait(waitCtx) }()
	select {
	case err := <-drained:
		if err != nil {
			stop() //nolint:errcheck // the drain error matters
			return Result{}, fmt.Errorf("%w; relay output: %s", err, stderr.String())
		}
	case err := <-exited:
		return Result{}, fmt.Errorf("relay exited early (%v): %s", err, stderr.String())
	}
	rss := processPeakRSSMB(cmd.Process.Pid)
	cpuNote := cpu.summary()
	if err := stop(); err != nil {
		return Result{}, fmt.Errorf("relay did not stop cleanly (%v): %s", err, stderr.String())
	}
	r := drainResult(s, n, start)
	r.PeakRSSMB = rss
	r.Note = fmt.Sprintf("relay process, %d channels, window %d, %s; %s", o.Channels, o.Window, r.Note, cpuNote)
	return r, nil
}

// relayInProcess runs the relay inside the bench process instead, so that --cpuprofile and
// --memprofile see it; its memory is then mixed with the sink's and is not reported.
func relayInProcess(ctx context.Context, o Options, db *sql.DB, s *sink, n int) (Result, error) {
	relay, err := publisher.New(publisher.Config{DB: db, AMQP: amqpx.DialConfig{URL: o.AMQPURL},
		Channels: o.Channels, Window: o.Window, MemberID: "bench-" + uniqueSuffix()})
	if err != nil {
		return Result{}, err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	// Labelled so a profile can tell the relay from the sink: pprof -tagfocus role=relay.
	go pprof.Do(runCtx, pprof.Labels("role", "relay"), func(ctx context.Context) { done <- relay.Run(ctx) })
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	waitErr := s.Wait(waitCtx)
	stop()
	if err := <-done; err != nil {
		return Result{}, err
	}
	if waitErr != nil {
		return Result{}, waitErr
	}
	r := drainResult(s, n, start)
	r.Note = fmt.Sprintf("relay in-process, %d channels, window %d, %s", o.Channels, o.Window, r.Note)
	return r, nil
}

// drainResult times a drain from the first message reaching the sink to the last: the
// ceiling's clock likewise starts with the connection already open, so the relay's start-up
// (process, connections, leases; shown in the note) is left out.
func drainResult(s *sink, n int, start time.Time) Result {
	first, last := s.Span()
	elapsed := last.Sub(first)
	if elapsed <= 0 { // a single message
		elapsed = last.Sub(start)
	}
	return Result{Messages: n, Seconds: elapsed.Seconds(), MsgsPerS: rate(n, elapsed),
		Note: fmt.Sprintf("start-up %.0f ms excluded", float64(first.Sub(start))/float64(time.Millisecond))}
}

func findResult(rs []Result, scenario string) (Result, bool) {
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Scenario == scenario {
			return rs[i], true
		}
	}
	return Result{}, false
}

// limitedWriter keeps at most left bytes and drops the rest, so a chatty child cannot grow
// the bench's memory.
type limitedWriter struct {
	w    *strings.Builder
	left int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.left > 0 {
		k := min(len(p), l.left)
		l.w.Write(p[:k])
		l.left -= k
	}
	return len(p), nil
}
