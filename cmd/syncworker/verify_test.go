package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncworker/syncworker/internal/testenv"
)

func TestVerifyCommandExitCodes(t *testing.T) {
	t.Parallel()
	src, rep := testenv.NewDatabase(t), testenv.NewDatabase(t)
	for _, d := range []*testenv.Database{src, rep} {
		for _, stmt := range []string{
			"CREATE TABLE orders (id INT PRIMARY KEY, status VARCHAR(10), total DECIMAL(10,2))",
			"INSERT INTO orders VALUES (1, 'new', 1.50), (2, 'paid', 2.00), (3, NULL, 3.25)",
		} {
			if _, err := d.DB.Exec(stmt); err != nil {
				t.Fatal(err)
			}
		}
	}
	args := []string{"verify", "--source-dsn", src.DSN, "--replica-dsn", rep.DSN, "--table", "orders", "--key", "id", "--chunk-size", "2"}
	code, out, errOut := runCLI(t, nil, "", args...)
	if code != 0 || !strings.Contains(out, "OK: the replica matches") {
		t.Fatalf("clean: code %d out %q err %q", code, out, errOut)
	}
	if _, err := rep.DB.Exec("UPDATE orders SET status = 'lost' WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, nil, "", args...)
	if code != exitDrift || !strings.Contains(out, "differing 1  e.g. 2") || !strings.Contains(errOut, "1 differing") {
		t.Fatalf("drift: code %d out %q err %q", code, out, errOut)
	}
	code, out, _ = runCLI(t, nil, "", append(args, "--json")...)
	var report struct {
		Differing     int      `json:"differing"`
		DifferingKeys []string `json:"differing_keys"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil || code != exitDrift || report.Differing != 1 || report.DifferingKeys[0] != "2" {
		t.Fatalf("json: code %d out %q err %v", code, out, err)
	}
	// --config takes the mappings of a consume file; every mapped table is verified.
	if _, err := src.DB.Exec("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(10))"); err != nil {
		t.Fatal(err)
	}
	if _, err := rep.DB.Exec("CREATE TABLE customers_copy (id INT PRIMARY KEY, name VARCHAR(10), extra INT)"); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "consume.yaml")
	if err := os.WriteFile(cfgFile, []byte(`queue: q
consumer_name: c
row_sync:
  tables:
    - {source: customers, target: customers_copy, key_columns: [id]}
    - {source: orders, key_columns: [id], columns: [total]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, nil, "", "verify", "--source-dsn", src.DSN, "--replica-dsn", rep.DSN, "--config", cfgFile)
	if code != 0 || strings.Count(out, "OK: the replica matches") != 2 || !strings.Contains(out, "columns total") {
		t.Fatalf("--config (status is not in the allow-list, so its drift does not count): code %d out %q err %q", code, out, errOut)
	}
	if _, err := rep.DB.Exec("INSERT INTO customers_copy VALUES (9, 'ghost', 0)"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, nil, "", "verify", "--source-dsn", src.DSN, "--replica-dsn", rep.DSN, "--config", cfgFile)
	if code != exitDrift || !strings.Contains(out, "extra     1  e.g. 9") || !strings.Contains(errOut, "customers_copy differs") {
		t.Fatalf("--config drift: code %d out %q err %q", code, out, errOut)
	}

	// Without --replica-dsn the consumer's file names the replica: its mysql.dsn, ${VAR}s expanded.
	unified := consumerConfigFile(t, "")
	code, out, errOut = runCLI(t, map[string]string{"REPLICA_DSN_FOR_TEST": rep.DSN}, "", "verify", "--source-dsn", src.DSN, "--config", unified)
	if code != exitDrift || !strings.Contains(out, "extra     1  e.g. 9") {
		t.Fatalf("replica from the file's mysql.dsn: code %d out %q err %q", code, out, errOut)
	}
	code, _, errOut = runCLI(t, nil, "", "verify", "--source-dsn", src.DSN, "--config", unified)
	if code != 1 || !strings.Contains(errOut, "mysql.dsn: names ${REPLICA_DSN_FOR_TEST}, which is not set") {
		t.Fatalf("unset variable in the file's mysql.dsn: code %d err %q", code, errOut)
	}
	// The file's mysql.tls comes with its DSN: the replica is reached as the consumer reaches it.
	withTLS := consumerConfigFile(t, "  tls:\n    ca_file: /nonexistent/ca.pem\n")
	code, _, errOut = runCLI(t, map[string]string{"REPLICA_DSN_FOR_TEST": rep.DSN}, "", "verify", "--source-dsn", src.DSN, "--config", withTLS)
	if code != 1 || !strings.Contains(errOut, "mysql.tls") || !strings.Contains(errOut, "/nonexistent/ca.pem") {
		t.Fatalf("the file's mysql.tls was not applied to the replica: code %d err %q", code, errOut)
	}

	code, _, errOut = runCLI(t, map[string]string{"SYNCWORKER_MYSQL_DSN": ""}, "", "verify", "--table", "orders")
	if code != 2 || !strings.Contains(errOut, "--source-dsn is required") || !strings.Contains(errOut, "--key is required") {
		t.Fatalf("missing flags: code %d err %q", code, errOut)
	}
}

// consumerConfigFile writes a consumer's config file whose mysql.dsn is ${REPLICA_DSN_FOR_TEST}
// followed by mysqlExtra (more keys under mysql:, indented), syncing customers to customers_copy.
func consumerConfigFile(t *testing.T, mysqlExtra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "syncworker.yaml")
	text := "mysql:\n  dsn: \"${REPLICA_DSN_FOR_TEST}\"\n" + mysqlExtra + `consume:
  queue: q
  consumer_name: c
  row_sync:
    tables:
      - {source: customers, target: customers_copy, key_columns: [id]}
`
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
