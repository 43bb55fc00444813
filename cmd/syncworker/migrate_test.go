package main

import (
	"strings"
	"testing"

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
	for _, args := range [][]string{{"relay"}, {"status"}, {"outbox", "dead", "list"}, {"outbox", "dead", "retry", "--all"}} {
		code, _, errOut := runCLI(t, env, "", args...)
		if code == 0 || !strings.Contains(errOut, "run 'syncworker migrate' first") {
			t.Errorf("%s: code %d, stderr %q; want a failure that says to migrate first", strings.Join(args, " "), code, errOut)
		}
	}
}

// One problem is "1 problem".
func TestASingleConfigurationProblemIsSingular(t *testing.T) {
	code, _, errOut := runCLI(t, map[string]string{"SYNCWORKER_MYSQL_DSN": "root@tcp(127.0.0.1:1)/x"}, "", "relay")
	if code == 0 || !strings.Contains(errOut, "invalid configuration (1 problem):") || !strings.Contains(errOut, "amqp.url") {
		t.Fatalf("code %d, stderr %q; want one problem, amqp.url", code, errOut)
	}
}
