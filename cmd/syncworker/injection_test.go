package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncworker/syncworker/internal/testenv"
)

// Table and column names in the consume config that are not plain identifiers are refused at
// start, naming the offender, before any SQL runs: the table the names try to drop survives.
func TestConsumeRefusesInjectionInConfig(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	if _, err := d.DB.Exec("CREATE TABLE y (id BIGINT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	names := []string{"x; DROP TABLE y", "a`b", "col) VALUES (1); --", "y` WHERE 1=1; --", "", "1abc", strings.Repeat("n", 65)}
	for i, bad := range names {
		for _, field := range []string{"source", "target", "key_columns", "columns"} {
			t.Run(fmt.Sprintf("%d-%s", i, field), func(t *testing.T) {
				m := map[string]string{"source": "orders", "target": "orders", "key_columns": "[id]", "columns": "[status]"}
				q := fmt.Sprintf("%q", bad)
				if field == "key_columns" || field == "columns" {
					q = "[" + q + "]"
				}
				m[field] = q
				if bad == "" && field == "target" {
					t.Skip("an empty target means the source's name")
				}
				path := filepath.Join(t.TempDir(), "c.yaml")
				os.WriteFile(path, []byte(fmt.Sprintf("queue: q\nconsumer_name: c\nrow_sync:\n  tables:\n    - source: %s\n      target: %s\n      key_columns: %s\n      columns: %s\n",
					m["source"], m["target"], m["key_columns"], m["columns"])), 0o600)
				code, _, stderr := runCLI(t, map[string]string{"SYNCWORKER_MYSQL_DSN": d.DSN, "SYNCWORKER_AMQP_URL": testenv.AMQPURL()}, "",
					"consume", "--config", path)
				if code == 0 || !strings.Contains(stderr, "invalid SQL identifier") && !strings.Contains(stderr, "at least one column") {
					t.Errorf("config with %s %q: exit %d, stderr %q; want a refusal naming it", field, bad, code, stderr)
				}
				if bad != "" && !strings.Contains(stderr, fmt.Sprintf("%q", bad)) {
					t.Errorf("the refusal does not name %q: %s", bad, stderr)
				}
			})
		}
	}
	var n int
	if err := d.DB.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'y'").Scan(&n); err != nil || n != 1 {
		t.Errorf("table y is gone (%d, %v)", n, err)
	}
}
