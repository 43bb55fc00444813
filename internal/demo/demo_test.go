package demo

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/topology"
)

// trackTopology makes the test broker delete the demo's exchange and queues at the end.
func trackTopology(t *testing.T, b *testenv.Broker, prefix string) {
	t.Helper()
	topo, err := topology.Parse(TopologyYAML(prefix), "demo")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range topo.Exchanges {
		b.Track(e.Name)
	}
	for _, q := range topo.Queues {
		b.Track(q.Name, q.ParkingLot())
		for _, tier := range q.RetryTiers() {
			b.Track(tier.Queue)
		}
	}
}

func testConfig(t *testing.T) (Config, *bytes.Buffer) {
	b := testenv.NewBroker(t)
	prefix := b.Prefix + "demo"
	trackTopology(t, b, prefix)
	var progress bytes.Buffer
	cfg := Config{ServerDSN: testenv.MySQLDSNWithTimeout(), AMQPURL: b.URL, Prefix: prefix,
		DatabasePrefix: "swt_demo_" + testenv.RandomSuffix(8), Orders: 300, Writers: 4,
		Progress: &progress, ProgressInterval: 100 * time.Millisecond}
	// Run drops them when it succeeds; this covers failures and Keep.
	t.Cleanup(func() {
		if err := dropDatabases(context.Background(), cfg); err != nil {
			t.Errorf("drop demo databases: %v", err)
		}
	})
	return cfg, &progress
}

func TestDemoEndsWithoutDrift(t *testing.T) {
	t.Parallel()
	cfg, progress := testConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress)
	}
	if res.Drift() {
		t.Fatalf("drift: %+v %+v", res.Verify, res.Projection)
	}
	want := expectedEvents(300)
	if res.Events != 2*want {
		t.Errorf("events %d, want %d", res.Events, 2*want)
	}
	// 300 orders, every 10th deleted: 270 rows in the replica; 45 customers keep orders (those of c000, c010, ... are all deleted).
	if res.Verify.SourceRows != 270 || res.Verify.Matching != 270 || res.Projection.Customers != 45 {
		t.Errorf("verify %+v projection %+v", res.Verify, res.Projection)
	}
	if !strings.Contains(progress.String(), "produced "+itoa(2*want)+"/"+itoa(2*want)) {
		t.Errorf("progress never showed the total:\n%s", progress)
	}
	// Databases are dropped at the end unless Keep.
	server, err := sql.Open("mysql", testenv.MySQLDSNWithTimeout())
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	var n int
	if err := server.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?", cfg.DatabasePrefix+"%").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d databases left behind (%v)", n, err)
	}
}

// With Keep, a second run over the same databases starts from empty tables, and a wrong
// total in the projection is reported.
func TestDemoKeepRerunAndDrift(t *testing.T) {
	t.Parallel()
	cfg, progress := testConfig(t)
	cfg.Keep, cfg.Orders = true, 60
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for run := 1; run <= 2; run++ {
		res, err := Run(ctx, cfg)
		if err != nil || res.Drift() || res.Verify.SourceRows != 54 {
			t.Fatalf("run %d: %v %+v\n%s", run, err, res, progress)
		}
	}
	orders, _, projection := cfg.Databases()
	ordersDB, projectionDB := mustOpen(t, cfg, orders), mustOpen(t, cfg, projection)
	if _, err := projectionDB.Exec("UPDATE customer_totals SET total_cents = total_cents + 1 WHERE customer_id = 'c007'"); err != nil {
		t.Fatal(err)
	}
	check, err := checkProjection(ctx, ordersDB, projectionDB)
	if err != nil || check.Wrong != 1 || !strings.HasPrefix(check.Mismatched[0], "c007: ") {
		t.Fatalf("tampered projection not reported: %+v %v", check, err)
	}
}

func mustOpen(t *testing.T, cfg Config, name string) *sql.DB {
	db, err := sql.Open("mysql", dsnFor(cfg.ServerDSN, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// examples/demo/topology.yaml is what docker-compose.yml applies; it must be the demo's.
func TestExampleTopologyIsTheDemos(t *testing.T) {
	file, err := os.ReadFile("../../examples/demo/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, TopologyYAML("demo")) {
		t.Fatal("examples/demo/topology.yaml differs from internal/demo/topology.yaml.tmpl rendered with prefix demo; regenerate it")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestConfigProblemsAreReportedTogether(t *testing.T) {
	_, err := Run(context.Background(), Config{DatabasePrefix: "bad-name", Orders: -1})
	for _, want := range []string{"ServerDSN is required", "AMQPURL is required", "Orders -1", "DatabasePrefix"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// signalWriter closes ready when a line containing marker was written.
type signalWriter struct {
	marker string
	ready  chan struct{}
	once   sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.marker) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

// A run that fails (unreachable broker) or is interrupted (ctx cancelled, as by SIGTERM)
// drops its databases too, unless Keep.
func TestFailedOrInterruptedRunDropsItsDatabases(t *testing.T) {
	t.Parallel()
	server, err := sql.Open("mysql", testenv.MySQLDSNWithTimeout())
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	left := func(cfg Config) int {
		t.Helper()
		var n int
		if err := server.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
			cfg.DatabasePrefix+"\\_%").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	failing, _ := testConfig(t)
	failing.AMQPURL = "amqp://guest:guest@127.0.0.1:1/"
	if _, err := Run(context.Background(), failing); err == nil {
		t.Fatal("a run against an unreachable broker succeeded")
	}
	if n := left(failing); n != 0 {
		t.Errorf("%d databases left after a failed run", n)
	}

	interrupted, _ := testConfig(t)
	interrupted.Orders = 1_000_000 // never finishes on its own
	w := &signalWriter{marker: "databases and topology ready", ready: make(chan struct{})}
	interrupted.Progress = w
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := Run(ctx, interrupted); done <- err }()
	select {
	case <-w.ready:
	case err := <-done:
		t.Fatalf("the run ended before it was interrupted: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the databases and topology were not ready within 30s")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(45 * time.Second):
		t.Fatal("the interrupted run did not return within 45s")
	}
	if n := left(interrupted); n != 0 {
		t.Errorf("%d databases left after an interrupted run", n)
	}
}
