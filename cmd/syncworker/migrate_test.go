package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
)

func TestMigrateCommand(t *testing.T) {
	d := testenv.NewDatabase(t)
	code, out, errOut := runCLI(t, nil, "", "migrate", "--dsn", d.DSN)
	if code != 0 || !strings.Contains(out, "applied migrations [1") {
		t.Fatalf("first migrate: code %d, out %q, err %q", code, out, errOut)
	}
	code, out, _ = runCLI(t, map[string]string{"SYNCWORKER_MYSQL_DSN": d.DSN}, "", "migrate")
	if code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("second migrate: code %d, out %q", code, out)
	}
	code, _, errOut = runCLI(t, map[string]string{"SYNCWORKER_MYSQL_DSN": ""}, "", "migrate")
	if code != 1 || !strings.Contains(errOut, "--dsn") {
		t.Fatalf("missing DSN: code %d, err %q", code, errOut)
	}
	// A wrong password must not appear in the error.
	code, _, errOut = runCLI(t, nil, "", "migrate", "--dsn", "nobody:hunter2secret@tcp(127.0.0.1:3306)/x?timeout=2s")
	if code == 0 || strings.Contains(errOut, "hunter2secret") {
		t.Fatalf("bad credentials: code %d, err %q (must fail without the password)", code, errOut)
	}
}

// The commands that read syncworker's tables say to migrate first when they do not exist,
// instead of failing later with a bare "table doesn't exist" (or, for the relay, idling).
func TestCommandsOnAnUnmigratedDatabaseSayToMigrateFirst(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	b := testenv.NewBroker(t)
	env := map[string]string{"SYNCWORKER_MYSQL_DSN": d.DSN, "SYNCWORKER_AMQP_URL": b.URL}
	for _, args := range [][]string{{"relay"}, {"status"}, {"outbox", "dead", "list"}, {"outbox", "dead", "retry", "--all"},
		{"consume", "--queue", "q", "--consumer-name", "c", "--config", rowSyncConfig(t)}} {
		code, _, errOut := runCLI(t, env, "", args...)
		if code == 0 || !strings.Contains(errOut, "run 'syncworker migrate' first") {
			t.Errorf("%s: code %d, stderr %q; want a failure that says to migrate first", strings.Join(args, " "), code, errOut)
		}
	}
}

// A database that does not answer is not blamed on the schema: consume and the one-shot
// commands say they could not reach it; the relay (which keeps trying, by design) warns so.
func TestUnreachableDatabaseIsNotBlamedOnTheSchema(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SYNCWORKER_MYSQL_DSN": "root@tcp(127.0.0.1:1)/x", "SYNCWORKER_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}
	for _, args := range [][]string{{"consume", "--queue", "q", "--consumer-name", "c", "--config", rowSyncConfig(t)}, {"outbox", "dead", "list"}} {
		code, _, errOut := runCLI(t, env, "", args...)
		if code != 1 || !strings.Contains(errOut, "could not reach the database") || strings.Contains(errOut, "migrate") {
			t.Errorf("%s: code %d, stderr %q; want 1 and 'could not reach the database', no word of migrate", strings.Join(args, " "), code, errOut)
		}
	}
	relay := startCommand(t, env, "relay")
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		out := relay.stderr.String()
		return strings.Contains(out, "the relay keeps trying") && strings.Contains(out, "could not reach the database"), "relay stderr:\n" + out
	})
	if strings.Contains(relay.stderr.String(), "migrate") {
		t.Errorf("relay blames the schema:\n%s", relay.stderr.String())
	}
}

// rowSyncConfig writes a consume file mapping one table and returns its path.
func rowSyncConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "consume.yaml")
	if err := os.WriteFile(path, []byte("consume:\n  row_sync:\n    tables: [{source: orders, key_columns: [id]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// One problem is "1 problem".
func TestASingleConfigurationProblemIsSingular(t *testing.T) {
	code, _, errOut := runCLI(t, map[string]string{"SYNCWORKER_MYSQL_DSN": "root@tcp(127.0.0.1:1)/x"}, "", "relay")
	if code == 0 || !strings.Contains(errOut, "invalid configuration (1 problem):") || !strings.Contains(errOut, "amqp.url") {
		t.Fatalf("code %d, stderr %q; want one problem, amqp.url", code, errOut)
	}
}
