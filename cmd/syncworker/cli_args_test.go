package main

import (
	"strings"
	"testing"
)

// Bad command lines exit 2 with a message naming the flag or argument at fault, before
// anything connects (the DSN and URL point at closed ports).
func TestBadCommandLinesExitTwo(t *testing.T) {
	t.Parallel()
	const dsn, url = "root@tcp(127.0.0.1:1)/x", "amqp://guest:guest@127.0.0.1:1/"
	env := map[string]string{"SYNCWORKER_AMQP_URL": url}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"verify"}, "--source-dsn is required"},
		{[]string{"verify", "--source-dsn", dsn}, "--replica-dsn is required"},
		{[]string{"verify", "--source-dsn", dsn, "--replica-dsn", dsn, "--table", "t"}, "--key is required"},
		{[]string{"verify", "--source-dsn", dsn, "--replica-dsn", dsn, "--table", "t", "--key", "id", "--chunk-size", "-5"}, "--chunk-size -5"},
		{[]string{"dlq", "list"}, "--queue"},
		{[]string{"dlq", "list", "--queue", "q", "--limit", "-1"}, "--limit -1"},
		{[]string{"outbox", "dead", "retry", "--dsn", dsn}, "give the dead message ids"},
		{[]string{"outbox", "dead", "purge", "--dsn", dsn, "x1", "--yes"}, `"x1" is not a dead message id`},
		{[]string{"outbox", "dead", "list", "--dsn", dsn, "--limit", "-1"}, "--limit -1"},
		{[]string{"migrate", "--dsn", dsn, "extra"}, `unexpected argument "extra"`},
		{[]string{"relay", "--dsn", dsn, "stray", "--amqp-url", url}, `unexpected argument "stray"`},
		{[]string{"status", "--dsn", dsn, "--", "x"}, `unexpected argument "x"`},
		{[]string{"version", "now"}, `unexpected argument "now"`},
		{[]string{"demo", "--amqp-url", url}, "--dsn"},
		{[]string{"demo", "--amqp-url", url, "--dsn", dsn, "--orders", "0"}, "--orders 0"},
		{[]string{"demo", "--amqp-url", url, "--dsn", dsn, "--writers", "0"}, "--writers 0"},
		{[]string{"bench", "ceiling", "relay"}, `unexpected argument "relay"`},
	} {
		code, out, errOut := runCLI(t, env, "", tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, want 2 and stderr naming %q; stdout %q, stderr %q", strings.Join(tc.args, " "), code, tc.want, out, errOut)
		}
	}
}
