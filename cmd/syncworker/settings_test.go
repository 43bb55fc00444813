package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func loadForTest(t *testing.T, env map[string]string, n needs, args ...string) (*settings, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	b := bindSettings(fs, n)
	b.str("queue", "", func(s *settings) *string { return &s.Consume.Queue })
	b.int("partitions", "", func(s *settings) *int { return &s.Relay.Partitions })
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return b.load(&cliEnv{getenv: func(k string) string { return env[k] }}, n)
}

func TestExampleConfigLoadsAndValidates(t *testing.T) {
	env := map[string]string{"MYSQL_PASSWORD": "pw1", "AMQP_PASSWORD": "pw2"}
	s, err := loadForTest(t, env, needs{mysql: true, amqp: true, consume: true}, "--config", "../../syncworker.example.yaml")
	if err != nil {
		t.Fatalf("the example config does not load: %v", err)
	}
	if s.MySQL.DSN != "app:pw1@tcp(127.0.0.1:3306)/orders?parseTime=true" || !strings.Contains(s.AMQP.URL, "app:pw2@") {
		t.Fatalf("${VAR} not expanded: %q %q", s.MySQL.DSN, s.AMQP.URL)
	}
	if s.Relay.Partitions != 16 || s.Consume.Retry.Delays[2] != time.Minute || len(s.Consume.RowSync.Tables) != 1 || s.HTTP.Listen != ":9090" {
		t.Fatalf("example values not read: %+v", s)
	}
}

func TestConfigPrecedenceFlagsEnvFileDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("mysql:\n  dsn: file:pw@tcp(h:1)/db\nconsume:\n  queue: fromfile\nrelay:\n  partitions: 8\n"), 0o600) //nolint:errcheck
	env := map[string]string{"SYNCWORKER_CONFIG": path, "SYNCWORKER_MYSQL_DSN": "env:pw@tcp(h:1)/db"}
	s, err := loadForTest(t, env, needs{mysql: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.MySQL.DSN != "env:pw@tcp(h:1)/db" || s.Consume.Queue != "fromfile" || s.Relay.Partitions != 8 || s.Log.Level != "info" {
		t.Fatalf("env over file, file over defaults: %+v", s)
	}
	s, err = loadForTest(t, env, needs{mysql: true}, "--dsn", "flag:pw@tcp(h:1)/db", "--queue", "fromflag", "--partitions", "4")
	if err != nil {
		t.Fatal(err)
	}
	if s.MySQL.DSN != "flag:pw@tcp(h:1)/db" || s.Consume.Queue != "fromflag" || s.Relay.Partitions != 4 {
		t.Fatalf("flags over env and file: %+v", s)
	}
}

func TestBadConfigListsEveryProblemWithKeyLineAndAllowed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte(`mysql:
  dsn: "user:Secr3tPass@tcp(db:3306)/app"
amqp:
  url: "http://user:Secr3tPass@mq/"
log:
  level: loud
  format: xml
http:
  listen: "9090"
relay:
  partitions: 5000
  order: random
  channels: -1
  idle_poll_interval: 2ms
  stats_interval: -5s
  lease_ttl: 1ms
consume:
  batch_size: 2000
  retry:
    delays: [1s, -5s]
`), 0o600) //nolint:errcheck
	_, err := loadForTest(t, nil, needs{mysql: true, amqp: true, consume: true}, "--config", path)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		"bad.yaml:4: amqp.url: has the scheme \"http\"; allowed: amqp://",
		"bad.yaml:6: log.level: \"loud\" is not allowed; allowed: debug, info, warn, error",
		"bad.yaml:7: log.format",
		"bad.yaml:9: http.listen",
		"bad.yaml:11: relay.partitions: 5000 is out of range; allowed: 1 to 4096",
		"bad.yaml:12: relay.order",
		"bad.yaml:13: relay.channels",
		"bad.yaml:14: relay.idle_poll_interval: 2ms is shorter than relay.poll_interval 5ms",
		"bad.yaml:15: relay.stats_interval: -5s is negative",
		"bad.yaml:16: relay.lease_ttl: 1ms is too short; allowed: at least 1s",
		"bad.yaml:18: consume.batch_size",
		"bad.yaml:20: consume.retry.delays[1]",
		"consume.queue: is required",
		"consume.consumer_name: is required",
		"consume.row_sync.tables: is empty",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "Secr3tPass") {
		t.Errorf("password printed:\n%s", msg)
	}

	os.WriteFile(path, []byte("mysql:\n  dsn: x\n  pasword: y\nrelay:\n  partitons: 3\n"), 0o600) //nolint:errcheck
	_, err = loadForTest(t, nil, needs{mysql: true}, "--config", path)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:3: mysql.pasword: unknown key") || !strings.Contains(err.Error(), "bad.yaml:5: relay.partitons: unknown key") {
		t.Fatalf("unknown keys: %v", err)
	}
	_, err = loadForTest(t, nil, needs{mysql: true}, "--config", "../../syncworker.example.yaml")
	if err == nil || !strings.Contains(err.Error(), "mysql.dsn: names ${MYSQL_PASSWORD}, which is not set") {
		t.Fatalf("unset ${VAR}: %v", err)
	}
	_, err = loadForTest(t, map[string]string{"SYNCWORKER_LOG_LEVEL": "chatty"}, needs{})
	if err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Fatalf("bad env value: %v", err)
	}
}

// The consume-only file of before the unified config still works, with lines for problems.
func TestFlatConsumeFileStillLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replica.yaml")
	os.WriteFile(path, []byte("queue: demo.replica\nconsumer_name: demo\nretry:\n  delays: [1s, -5s]\nrow_sync:\n  tables:\n    - source: a\n      key_columns: [id]\n"), 0o600) //nolint:errcheck
	env := map[string]string{"SYNCWORKER_MYSQL_DSN": "u:p@tcp(h:1)/d", "SYNCWORKER_AMQP_URL": "amqp://h/"}
	_, err := loadForTest(t, env, needs{mysql: true, amqp: true, consume: true}, "--config", path)
	if err == nil || !strings.Contains(err.Error(), "replica.yaml:4: consume.retry.delays[1]") {
		t.Fatalf("flat file problem: %v", err)
	}
	os.WriteFile(path, []byte("queue: demo.replica\nconsumer_name: demo\nrow_sync:\n  tables:\n    - source: a\n      key_columns: [id]\n"), 0o600) //nolint:errcheck
	s, err := loadForTest(t, env, needs{mysql: true, amqp: true, consume: true}, "--config", path)
	if err != nil || s.Consume.Queue != "demo.replica" || len(s.Consume.RowSync.Tables) != 1 {
		t.Fatalf("flat file: %v %+v", err, s)
	}
}

// verify --config reads the mappings of the unified file's consume section too.
func TestVerifyReadsMappingsOfTheUnifiedFile(t *testing.T) {
	jobs, file, err := verifyJobsFromConsumerFile("../../syncworker.example.yaml")
	if err != nil || len(jobs) != 1 || jobs[0].SourceTable != "orders" || jobs[0].ReplicaTable != "orders_replica" {
		t.Fatalf("jobs %+v, err %v", jobs, err)
	}
	if !strings.Contains(file.MySQL.DSN, "${MYSQL_PASSWORD}") {
		t.Fatalf("the file's mysql.dsn (the replica for verify) is %q", file.MySQL.DSN)
	}
}

// Settings the subscriber would refuse are reported with the other configuration problems,
// by key and before anything connects (the DSN and URL point at closed ports).
func TestConsumeSettingsAreCheckedByTheSubscribersRulesBeforeConnecting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "consume.yaml")
	os.WriteFile(path, []byte(`consume:
  queue: q
  consumer_name: c
  prefetch: 70000
  inbox_retention: 30s
  retry:
    delays: [1s, 1m]
  row_sync:
    tables: [{source: orders, key_columns: [id]}]
`), 0o600) //nolint:errcheck
	env := map[string]string{"SYNCWORKER_MYSQL_DSN": "root@tcp(127.0.0.1:1)/x", "SYNCWORKER_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}
	code, _, errOut := runCLI(t, env, "", "consume", "--config", path)
	for _, want := range []string{"invalid configuration (2 problems)", "consume.yaml:4: consume.prefetch: 70000 is outside 1..65535",
		"consume.yaml:5: consume.inbox_retention: 30s must be longer than the longest retry delay 1m0s"} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("code %d, stderr lacks %q:\n%s", code, want, errOut)
		}
	}
	for _, unwanted := range []string{"Prefetch", "InboxRetention", "connect", "reach"} {
		if strings.Contains(errOut, unwanted) {
			t.Errorf("stderr names %q:\n%s", unwanted, errOut)
		}
	}
}

// A URL that does not parse is explained (bad port, bad escape) without quoting it: its
// password cannot be redacted then.
func TestBadAMQPURLSaysWhatIsWrongWithoutThePassword(t *testing.T) {
	for url, want := range map[string]string{
		"amqp://guest:Secr3tPass@127.0.0.1:notaport/": "amqp.url: has a port that is not a number",
		"amqp://guest:Secr3t/Pass@127.0.0.1/":         "amqp.url: has a port that is not a number",
		"amqp://guest:Secr3t%zzPass@127.0.0.1/":       "amqp.url: has an invalid %-escape (write a literal % as %25)",
		"amqp://guest:Secr3tPass@127.0.0.1:99999/":    "amqp.url: has the port 99999, outside 1..65535",
		"amqps//guest:Secr3tPass@127.0.0.1/":          `amqp.url: has the scheme ""`,
	} {
		_, err := loadForTest(t, map[string]string{"SYNCWORKER_AMQP_URL": url}, needs{amqp: true})
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "Secr3t") || strings.Contains(err.Error(), "Pass") {
			t.Errorf("%s: %v; want %q and no password", url, err, want)
		}
	}
}

// Keys of the wrong type and unknown keys are reported with the validation problems, all at
// once, each by key and line, without Go type names or the values (they may hold a password).
func TestConfigDecodingProblemsAreReportedWithTheRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.yaml")
	os.WriteFile(path, []byte(`mysql: "u:Secr3tPass@tcp(h:1)/d"
log:
  level: loud
relay:
  partitions: 5000
  retry_initial: soon
pasword: x
other: {channels: 1}
consume: {concurrency: "four", retry: {delays: [1s, [2s]]}}
`), 0o600) //nolint:errcheck
	_, err := loadForTest(t, nil, needs{mysql: true}, "--config", path)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	want := []string{
		"invalid configuration (8 problems)",
		"f.yaml:1: mysql: a string is not allowed; allowed: a mapping of keys (a section)",
		"f.yaml:3: log.level: \"loud\" is not allowed",
		"f.yaml:5: relay.partitions: 5000 is out of range",
		"f.yaml:6: relay.retry_initial: is not a duration; allowed: a duration such as 500ms",
		"f.yaml:7: pasword: unknown key",
		"f.yaml:8: other: unknown key",
		"f.yaml:9: consume.concurrency: a string is not allowed; allowed: an integer",
		"f.yaml:9: consume.retry.delays[1]: a list is not allowed; allowed: a duration",
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q in:\n%s", w, msg)
		}
	}
	for _, unwanted := range []string{"Secr3tPass", "main.", "struct", "time.Duration", "!!", "mysql.dsn"} {
		if strings.Contains(msg, unwanted) {
			t.Errorf("%q in:\n%s", unwanted, msg)
		}
	}
}

// A bad value from the environment or a flag is blamed on it, not on the file line whose
// value it replaced; one from a flag exits 2 like any bad command line.
func TestProblemsNameTheEnvironmentVariableOrFlagThatSetTheValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lv.yaml")
	os.WriteFile(path, []byte("mysql:\n  dsn: u:p@tcp(h:1)/d\nlog:\n  level: debug\nrelay:\n  partitions: 8\n"), 0o600) //nolint:errcheck
	_, err := loadForTest(t, map[string]string{"SYNCWORKER_LOG_LEVEL": "loud"}, needs{mysql: true}, "--config", path, "--partitions", "5000")
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, want := range []string{`env SYNCWORKER_LOG_LEVEL: log.level: "loud" is not allowed`, "flag --partitions: relay.partitions: 5000 is out of range"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "lv.yaml") {
		t.Errorf("blamed on the file:\n%v", err)
	}
	code, _, errOut := runCLI(t, map[string]string{"SYNCWORKER_MYSQL_DSN": "root@tcp(127.0.0.1:1)/x", "SYNCWORKER_AMQP_URL": "amqp://127.0.0.1:1/"}, "",
		"consume", "--queue", "q", "--consumer-name", "c", "--config", rowSyncConfig(t), "--prefetch", "70000")
	// A flag's bad value is a bad command line: exit code 2 and a pointer to the usage.
	if code != 2 || !strings.Contains(errOut, "flag --prefetch: consume.prefetch: 70000 is outside 1..65535") ||
		!strings.Contains(errOut, "syncworker consume --help") {
		t.Errorf("consume --prefetch 70000: code %d, stderr %q", code, errOut)
	}
}

// relay.confirm_timeout and consume.flush_interval have flags like every other key of theirs.
func TestConfirmTimeoutAndFlushIntervalFlags(t *testing.T) {
	env := map[string]string{"SYNCWORKER_MYSQL_DSN": "root@tcp(127.0.0.1:1)/x", "SYNCWORKER_AMQP_URL": "amqp://127.0.0.1:1/"}
	code, _, errOut := runCLI(t, env, "", "relay", "--confirm-timeout", "-1s")
	if code != 2 || !strings.Contains(errOut, "flag --confirm-timeout: relay.confirm_timeout: -1s is negative") {
		t.Errorf("relay --confirm-timeout -1s: code %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, env, "", "consume", "--queue", "q", "--consumer-name", "c", "--config", rowSyncConfig(t), "--flush-interval", "-1s")
	if code != 2 || !strings.Contains(errOut, "flag --flush-interval: consume.flush_interval: -1s is negative") {
		t.Errorf("consume --flush-interval -1s: code %d, stderr %q", code, errOut)
	}
}
