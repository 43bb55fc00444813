//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/internal/faultproxy"
	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/topology"
)

// Run it with scripts/test.sh (its last step) or:
//
//	go test -tags chaos -count=1 -timeout 10m ./chaos/ -run TestChaos -v
//	go test -tags chaos -count=1 -timeout 0 ./chaos/ -run TestChaos -v -chaos.duration=30m   # soak
var (
	duration = flag.Duration("chaos.duration", envDuration("SYNCWORKER_CHAOS_DURATION", 90*time.Second),
		"how long producers write while faults are injected (env SYNCWORKER_CHAOS_DURATION)")
	raceBinary = flag.Bool("chaos.race", os.Getenv("SYNCWORKER_CHAOS_RACE") != "0",
		"build the syncworker binary with the race detector (env SYNCWORKER_CHAOS_RACE=0 turns it off)")
	producers = flag.Int("chaos.producers", 4, "concurrent producer goroutines")
)

// brokerRestart: stop_app/start_app stops every test using the broker, so it is done only
// when the chaos test runs alone (scripts/test.sh sets this for its own step).
// SYNCWORKER_CHAOS_RABBITMQ_NODE names the node rabbitmqctl controls (-n), for a broker
// started for the test next to the usual one.
var (
	brokerRestart = os.Getenv("SYNCWORKER_CHAOS_BROKER_RESTART") == "1"
	rabbitNode    = os.Getenv("SYNCWORKER_CHAOS_RABBITMQ_NODE")
)

const (
	leaseTTL  = 2 * time.Second
	itemCount = 50
)

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

func TestChaos(t *testing.T) {
	started := time.Now()
	// Producers' connections are killed on purpose; the driver's complaints are noise here.
	mysql.SetLogger(log.New(io.Discard, "", 0)) //nolint:errcheck // a non-nil logger is always accepted
	ctx := context.Background()
	src, rep := newSourceAndReplica(t)
	broker := testenv.NewBroker(t)
	exchange, queue := broker.Name("chaos"), broker.Name("replica")
	broker.Track(queue+".retry.1s", queue+".parked")
	topo, err := topology.Parse([]byte(fmt.Sprintf(`
exchanges:
  - name: %[1]s
    type: direct
queues:
  - name: %[2]s
    retry:
      delays: [1s]
bindings:
  - exchange: %[1]s
    queue: %[2]s
    routing_key: rows
`, exchange, queue)), "chaos-topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topology.Apply(ctx, broker.Conn, topo); err != nil {
		t.Fatal(err)
	}

	bin := buildBinary(t, *raceBinary)
	logDir := t.TempDir()

	// Every process reaches MariaDB and RabbitMQ through a proxy of its role, so a cut is a
	// real broken TCP connection for that role only.
	proxy := func(target string) *faultproxy.Proxy {
		p, err := faultproxy.New(target)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	relayDB, relayMQ := proxy(testenv.MySQLAddr(t)), proxy(broker.Host())
	consumerDB, consumerMQ := proxy(testenv.MySQLAddr(t)), proxy(broker.Host())

	cfgPath := filepath.Join(t.TempDir(), "consume.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`queue: %s
consumer_name: chaos
stop_timeout: 5s
retry:
  delays: [1s]
  max_attempts: 5
row_sync:
  tables:
    - source: items
      key_columns: [id]
      columns: [val]
    - source: event_log
      key_columns: [event_id]
      columns: [item_id]
`, queue)), 0o600); err != nil {
		t.Fatal(err)
	}

	var procs []*process
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("relay-%d", i)
		procs = append(procs, &process{name: name, bin: bin, logDir: logDir,
			args: []string{"relay", "--group", "chaos", "--member-id", name, "--partitions", "8",
				"--lease-ttl", leaseTTL.String(), "--retry-initial", "100ms", "--retry-max", "2s",
				"--shutdown-timeout", "5s"},
			env: []string{"SYNCWORKER_MYSQL_DSN=" + testenv.DSNVia(t, src.DSN, relayDB.Addr()),
				"SYNCWORKER_AMQP_URL=" + broker.URLVia(relayMQ.Addr())}})
	}
	for i := 1; i <= 2; i++ {
		procs = append(procs, &process{name: fmt.Sprintf("consumer-%d", i), bin: bin, logDir: logDir,
			args: []string{"consume", "--config", cfgPath},
			env: []string{"SYNCWORKER_MYSQL_DSN=" + testenv.DSNVia(t, rep.DSN, consumerDB.Addr()),
				"SYNCWORKER_AMQP_URL=" + broker.URLVia(consumerMQ.Addr())}})
	}
	for _, p := range procs {
		p.start(t)
	}
	stopAll := func() {
		var wg sync.WaitGroup
		for _, p := range procs {
			wg.Add(1)
			go func() { defer wg.Done(); p.stop() }()
		}
		wg.Wait()
	}
	t.Cleanup(stopAll)
	relays, consumers := procs[:2], procs[2:]

	// Producers write until the fault phase ends.
	prodCtx, stopProducers := context.WithTimeout(ctx, *duration)
	defer stopProducers()
	var committed, rolledBack, failed atomic.Int64
	var pwg sync.WaitGroup
	for i := 0; i < *producers; i++ {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			tick := time.NewTicker(40 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-prodCtx.Done():
					return
				case <-tick.C:
				}
				switch err := produce(prodCtx, src.DB, exchange); {
				case err == errRolledBack:
					rolledBack.Add(1)
				case err != nil:
					failed.Add(1) // deadlocks, killed connections: the transaction did not commit (or produced_events says it did)
				default:
					committed.Add(1)
				}
			}
		}()
	}

	// Faults, one at a time, in rotation, until the producers stop.
	admin, err := sql.Open("mysql", testenv.MySQLDSNWithTimeout())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	faults := map[string]int{}
	type fault struct {
		name string
		do   func() error
	}
	pick := func(ps []*process) *process { return ps[rand.IntN(len(ps))] }
	rotation := []fault{
		{"sigkill-relay", func() error { return pick(relays).kill() }},
		{"cut-relay-broker", func() error { relayMQ.Cut(); return nil }},
		{"sigkill-consumer", func() error { return pick(consumers).kill() }},
		{"kill-db-connections", func() error { return killConnections(ctx, admin, src.Name, rep.Name) }},
		{"sigstop-relay", func() error { return pick(relays).pauseFor(2*leaseTTL + time.Second) }},
		{"cut-consumer-broker", func() error { consumerMQ.Cut(); return nil }},
		{"cut-relay-db", func() error { relayDB.Cut(); return nil }},
		{"cut-consumer-db", func() error { consumerDB.Cut(); return nil }},
		// A partition: the connections stay open but carry nothing for a while (no reset, as
		// behind a firewall that drops packets), sometimes past the relays' lease, then the
		// held bytes arrive late.
		{"partition-relay-db", func() error { partitionFor(relayDB); return nil }},
		{"partition-consumer-broker", func() error { partitionFor(consumerMQ); return nil }},
		{"partition-relay-broker", func() error { partitionFor(relayMQ); return nil }},
		{"partition-consumer-db", func() error { partitionFor(consumerDB); return nil }},
	}
	// One broker restart, one database crash and one freeze of each per 16 faults: the first
	// broker freeze after 4, restart after 8, database freeze after 12 and crash after 15, so
	// all happen in the 90-s run of scripts/test.sh.
	const restartEvery = 16
	for n := 0; prodCtx.Err() == nil; n++ {
		f := rotation[n%len(rotation)]
		switch {
		case brokerRestart && n%restartEvery == restartEvery/4:
			f = fault{"freeze-broker", freezeBroker}
		case brokerRestart && n%restartEvery == restartEvery/2:
			f = fault{"broker-restart", restartBroker}
		case dbCrash && n%restartEvery == restartEvery*3/4:
			f = fault{"freeze-db", func() error { return freezeDatabase(ctx, admin) }}
		case dbCrash && n%restartEvery == restartEvery-1:
			f = fault{"db-crash", func() error { return crashDatabase(ctx, admin) }}
		}
		if err := f.do(); err != nil {
			t.Errorf("fault %s: %v", f.name, err)
		}
		faults[f.name]++
		select {
		case <-prodCtx.Done():
		case <-time.After(time.Duration(2000+rand.IntN(2000)) * time.Millisecond):
		}
	}
	pwg.Wait()
	faultCount := 0
	for _, n := range faults {
		faultCount += n
	}
	t.Logf("faults: %v; transactions committed=%d rolled back=%d failed=%d",
		faults, committed.Load(), rolledBack.Load(), failed.Load())

	// Settle: every process runs (the supervisors restarted the killed ones); wait until the
	// outbox is empty and every committed event arrived, then stop everything and compare.
	settle := max(90*time.Second, *duration/4)
	var res Result
	deadline := time.Now().Add(settle)
	for {
		res, err = Check(ctx, admin, src.Name, rep.Name)
		if err == nil && res.Outbox == 0 && res.Lost == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("not settled after %v: %+v (err %v)", settle, res, err)
			break
		}
		time.Sleep(200 * time.Millisecond) // polling the end state; a deadline bounds it
	}
	stopAll()
	exits := map[string]int{}
	for _, p := range procs {
		exits[p.name] = p.exits
	}
	t.Logf("process exits (killed, crashed or stopped): %v", exits)
	if res, err = Check(ctx, admin, src.Name, rep.Name); err != nil {
		t.Fatal(err)
	}
	parked := queueDepth(t, broker.URL, queue+".parked")
	// drift is what the verify package (syncworker verify) finds in the replica; lost and
	// phantom events are counted by SQL and by verify, which must agree.
	v, err := Verify(ctx, src.DB, rep.DB)
	if err != nil {
		t.Fatal(err)
	}
	if int(v.Events.Missing) != res.Lost || int(v.Events.Extra) != res.Phantom || (v.Drift() == 0) != (res.Drift == 0) {
		t.Errorf("verify and the SQL checks disagree: verify %+v / %+v, SQL %+v", *v.Items, *v.Events, res)
	}
	line := fmt.Sprintf("chaos: events=%d faults=%d lost=%d double_applied=%d drift=%d phantom=%d parked=%d dead=%d",
		res.Events, faultCount, res.Lost, res.DoubleApplied, v.Drift(), res.Phantom, parked, res.Dead)
	fmt.Println(line)
	t.Logf("%s (run time %v; items: %d in the source, %d in the replica)", line, time.Since(started).Round(time.Second),
		v.Items.SourceRows, v.Items.ReplicaRows)
	if !res.OK() || v.Drift() != 0 || parked != 0 || res.Dead != 0 || res.Events == 0 {
		t.Errorf("chaos failed: %+v parked=%d", res, parked)
	}
	for _, p := range procs {
		if p.raced() {
			t.Errorf("%s: the race detector reported a data race (log %s)", p.name, p.logPath())
		}
	}
	if t.Failed() {
		for _, p := range procs {
			t.Logf("--- tail of %s:\n%s", p.name, p.tail(40))
		}
	}
}

var errRolledBack = fmt.Errorf("rolled back on purpose")

// produce runs one producer transaction: a change of a random item (an upsert, or one time in
// eight a delete; a row-sync event with the item's next version) and one event row keyed by a
// fresh id, both through the outbox; about one transaction in ten is rolled back after
// writing everything.
func produce(ctx context.Context, db *sql.DB, exchange string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	id := 1 + rand.IntN(itemCount)
	key := map[string]any{"id": id}
	// Creating the version record first avoids the gap lock a locking read of a missing row
	// takes (which makes concurrent producers deadlock).
	if _, err := tx.ExecContext(ctx, "INSERT IGNORE INTO item_versions (id, version) VALUES (?, 0)", id); err != nil {
		return err
	}
	var version uint64
	if err := tx.QueryRowContext(ctx, "SELECT version FROM item_versions WHERE id = ? FOR UPDATE", id).Scan(&version); err != nil {
		return err
	}
	version++
	if _, err := tx.ExecContext(ctx, "UPDATE item_versions SET version = ? WHERE id = ?", version, id); err != nil {
		return err
	}
	var item outbox.Message
	if rand.IntN(8) == 0 {
		if _, err := tx.ExecContext(ctx, "DELETE FROM items WHERE id = ?", id); err != nil {
			return err
		}
		item, err = outbox.RowDelete("items", key, version)
	} else {
		val := fmt.Sprintf("v%d-%d", version, rand.IntN(1000))
		if _, err := tx.ExecContext(ctx, "INSERT INTO items (id, val) VALUES (?, ?) ON DUPLICATE KEY UPDATE val = VALUES(val)", id, val); err != nil {
			return err
		}
		item, err = outbox.RowUpsert("items", key, map[string]any{"val": val}, version)
	}
	if err != nil {
		return err
	}
	eventID := uuid.NewString()
	if _, err := tx.ExecContext(ctx, "INSERT INTO produced_events (event_id, item_id) VALUES (?, ?)", eventID, id); err != nil {
		return err
	}
	ev, err := outbox.RowUpsert("event_log", map[string]any{"event_id": eventID}, map[string]any{"item_id": id}, 1)
	if err != nil {
		return err
	}
	for _, m := range []*outbox.Message{&item, &ev} {
		m.Exchange, m.RoutingKey = exchange, "rows"
	}
	if err := outbox.Write(ctx, tx, item, ev); err != nil {
		return err
	}
	if rand.IntN(10) == 0 {
		return errRolledBack // the deferred Rollback undoes all of it
	}
	return tx.Commit()
}

// killConnections kills every session on the chaos test's two databases (the relays',
// the consumers' and the producers'), never another test's.
func killConnections(ctx context.Context, admin *sql.DB, dbs ...string) error {
	conn, err := admin.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE DB IN (?, ?) AND ID <> CONNECTION_ID()", dbs[0], dbs[1])
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		conn.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id)) //nolint:errcheck // it may have gone already
	}
	return nil
}

// partitionFor stops p forwarding anything for 1 to 5 seconds.
func partitionFor(p *faultproxy.Proxy) {
	p.Pause()
	time.Sleep(time.Duration(1000+rand.IntN(4000)) * time.Millisecond) // the fault itself is the silence
	p.Resume()
}

// restartBroker stops and starts the RabbitMQ application (the node keeps running).
func restartBroker() error {
	for _, op := range []string{"stop_app", "start_app", "await_startup"} {
		if _, err := rabbitmqctl(op); err != nil {
			return err
		}
	}
	return nil
}

// rabbitmqctl runs rabbitmqctl against the broker the test controls.
func rabbitmqctl(args ...string) ([]byte, error) {
	args = append([]string{"-q"}, args...)
	if rabbitNode != "" {
		args = append([]string{"-n", rabbitNode}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("rabbitmqctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

func queueDepth(t *testing.T, url, queue string) int {
	t.Helper()
	conn, err := amqpx.Dial(amqpx.DialConfig{URL: url})
	if err != nil {
		t.Errorf("dial broker: %v", err)
		return -1
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("channel: %v", err)
		return -1
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Errorf("inspect %s: %v", queue, err)
		return -1
	}
	return q.Messages
}

func buildBinary(t *testing.T, race bool) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "syncworker")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), append(args, "../cmd/syncworker")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is one relay or consumer, restarted by its supervisor whenever it exits, as a
// service manager would.
type process struct {
	name, bin, logDir string
	args, env         []string

	mu       sync.Mutex
	cmd      *exec.Cmd
	stopping bool
	done     chan struct{} // closed when the supervisor ends
	alive    bool          // started and not yet reaped
	exits    int
}

func (p *process) logPath() string { return filepath.Join(p.logDir, p.name+".log") }

func (p *process) start(t *testing.T) {
	log, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		defer log.Close()
		for {
			cmd := exec.Command(p.bin, p.args...)
			cmd.Env = append(os.Environ(), p.env...)
			cmd.Stdout, cmd.Stderr = log, log
			p.mu.Lock()
			if p.stopping {
				p.mu.Unlock()
				return
			}
			err := cmd.Start()
			p.cmd, p.alive = cmd, err == nil
			p.mu.Unlock()
			if err == nil {
				err = cmd.Wait()
			}
			fmt.Fprintf(log, "=== chaos: %s exited: %v\n", p.name, err)
			p.mu.Lock()
			p.alive = false
			p.exits++
			stopping := p.stopping
			p.mu.Unlock()
			if stopping {
				return
			}
			time.Sleep(500 * time.Millisecond) // a service manager's restart delay
		}
	}()
}

// signal sends sig to the running process, waiting up to 10s for the supervisor to
// (re)start it.
func (p *process) signal(sig syscall.Signal) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		if p.alive {
			err := p.cmd.Process.Signal(sig)
			p.mu.Unlock()
			return err
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			return fmt.Errorf("%s has not been running for 10s", p.name)
		}
		time.Sleep(50 * time.Millisecond) // waiting for the supervisor's restart
	}
}

func (p *process) kill() error { return p.signal(syscall.SIGKILL) }

// pauseFor stops the process with SIGSTOP for d (longer than its lease), then continues it.
func (p *process) pauseFor(d time.Duration) error {
	if err := p.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	time.Sleep(d) // the fault itself is the pause
	return p.signal(syscall.SIGCONT)
}

// stop ends the supervisor: SIGTERM, and SIGKILL if the process has not exited in 20s.
func (p *process) stop() {
	p.mu.Lock()
	if p.done == nil {
		p.mu.Unlock()
		return
	}
	p.stopping = true
	if p.alive {
		p.cmd.Process.Signal(syscall.SIGCONT) //nolint:errcheck // may have exited
		p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	}
	p.mu.Unlock()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.kill() //nolint:errcheck
		<-p.done
	}
}

func (p *process) raced() bool {
	data, _ := os.ReadFile(p.logPath())
	return bytes.Contains(data, []byte("WARNING: DATA RACE"))
}

func (p *process) tail(n int) string {
	data, _ := os.ReadFile(p.logPath())
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
