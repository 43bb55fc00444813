package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

const leakedSecret = "Sup3rS3cretPw"

// The relay and the consumer never print the database or broker password: not when a server
// refuses the connection, not when the password is wrong, not when the DSN or URL is
// malformed, not while they retry.
func TestErrorsDoNotLeakSecrets(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	if err := outbox.Migrate(context.Background(), d.DB); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgPath, []byte("queue: q\nconsumer_name: c\nrow_sync:\n  tables:\n    - {source: orders, key_columns: [id]}\n"), 0o600)
	goodDSN := d.DSN
	wrongPw := testenv.DSNVia(t, strings.Replace(d.DSN, "@", ":"+leakedSecret+"@", 1), testenv.MySQLAddr(t))
	if !strings.Contains(wrongPw, leakedSecret) {
		// the test server's DSN may already carry a password: replace it
		wrongPw = "root:" + leakedSecret + "@tcp(" + testenv.MySQLAddr(t) + ")/" + d.Name
	}
	cases := []struct{ name, dsn, url string }{
		{"db refused", "u:" + leakedSecret + "@tcp(127.0.0.1:1)/db?timeout=1s", "amqp://u:" + leakedSecret + "@127.0.0.1:1/"},
		{"db wrong password", wrongPw, "amqp://u:" + leakedSecret + "@127.0.0.1:1/"},
		{"db malformed", "u:" + leakedSecret + "@tcp(127.0.0.1:1/db", "amqp://u:" + leakedSecret + "@127.0.0.1:1/"},
		{"broker refused", goodDSN, "amqp://u:" + leakedSecret + "@127.0.0.1:1/"},
		{"broker wrong password", goodDSN, "amqp://guest:" + leakedSecret + "@" + testenv.NewBroker(t).Host() + "/"},
		{"broker malformed", goodDSN, "amqp://u:" + leakedSecret + "@127.0.0.1:99999x/"},
		{"broker url with a %", goodDSN, "amqp://u:" + leakedSecret + "%zz@127.0.0.1:1/"},
	}
	for _, c := range cases {
		for _, args := range [][]string{{"relay", "--lease-ttl", "1s"}, {"consume", "--config", cfgPath}} {
			t.Run(c.name+"/"+args[0], func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				var out, errOut lockedBuffer
				env := &cliEnv{stdout: &out, stderr: &errOut, stdin: strings.NewReader(""), getenv: func(k string) string {
					return map[string]string{"SYNCWORKER_MYSQL_DSN": c.dsn, "SYNCWORKER_AMQP_URL": c.url}[k]
				}}
				run(ctx, env, args)
				all := out.String() + errOut.String()
				if strings.Contains(all, leakedSecret) || strings.Contains(all, "zz@") {
					t.Errorf("%s printed the password:\n%s", args[0], all)
				}
				if all == "" {
					t.Errorf("%s printed nothing: the failure is invisible", args[0])
				}
			})
		}
	}
}
