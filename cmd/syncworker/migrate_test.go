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
