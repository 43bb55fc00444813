package main

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/syncworker/syncworker/internal/testenv"
)

// Every command run with a (wrong) password in the DSN and the URL fails or logs about the
// connection, and the password appears nowhere: not in stdout, stderr, /readyz or /metrics.
func TestPasswordsNeverPrinted(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	b := testenv.NewBroker(t)
	const secret = "Pw-Sekrit-4711"
	cfg, err := mysql.ParseDSN(d.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Passwd = "syncworker_nobody", secret
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("syncworker_nobody", secret)
	env := map[string]string{"SYNCWORKER_MYSQL_DSN": cfg.FormatDSN(), "SYNCWORKER_AMQP_URL": u.String()}

	var seen strings.Builder
	check := func(what, text string) {
		t.Helper()
		seen.WriteString(text)
		if strings.Contains(text, secret) {
			t.Errorf("%s printed the password:\n%s", what, text)
		}
	}
	for _, args := range [][]string{
		{"migrate"}, {"status", "--topology", "../../syncworker.example.yaml"}, {"outbox", "dead", "list"},
		{"dlq", "list", "--queue", "q"}, {"dlq", "replay", "--queue", "q"}, {"topology", "plan", "-f", "x.yaml"},
		{"consume", "--queue", "q", "--consumer-name", "c", "--log-level", "debug"},
		{"consume", "--log-format", "nonsense"},
		{"relay", "--help"}, {"consume", "--help"}, {"status", "--help"}, {"dlq", "replay", "--help"},
		{"verify", "--help"}, {"demo", "--help"}, {"migrate", "--help"}, {"topology", "apply", "--help"},
	} {
		code, out, errOut := runCLI(t, env, "", args...)
		check(strings.Join(args, " ")+" stdout", out)
		check(strings.Join(args, " ")+" stderr", errOut)
		if code == 0 && !strings.Contains(strings.Join(args, " "), "--help") {
			t.Errorf("%v succeeded with wrong credentials", args)
		}
	}

	relay := startCommand(t, env, "relay", "--http-listen", "127.0.0.1:0", "--log-level", "debug", "--partitions", "2")
	relayURL := relay.opsAddr(t)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		code, body := httpGet(t, relayURL+"/readyz")
		check("/readyz", body)
		return code == 503 && strings.Contains(body, "Access denied") && strings.Contains(body, `"broker"`), body
	})
	_, metrics := httpGet(t, relayURL+"/metrics")
	check("/metrics", metrics)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Count(relay.stderr.String(), "\n") >= 3, "relay logged little:\n" + relay.stderr.String()
	})
	relay.stop(t)
	check("relay stderr", relay.stderr.String())
	// The test can fail: the commands did print the user name and the error texts.
	if !strings.Contains(seen.String(), "syncworker_nobody") || !strings.Contains(seen.String(), "xxxxx") {
		t.Errorf("the commands printed neither the user nor a masked password; is the test still testing?\n%.3000s", seen.String())
	}
}
