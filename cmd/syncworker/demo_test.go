package main

import (
	"strings"
	"testing"

	"github.com/syncworker/syncworker/internal/testenv"
)

func TestDemoCommand(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	prefix := b.Prefix + "demo"
	b.Track(prefix+".orders", prefix+".replica", prefix+".projection")
	for _, q := range []string{prefix + ".replica", prefix + ".projection"} {
		b.Track(q+".retry.1s", q+".retry.5s", q+".parked")
	}
	env := map[string]string{"SYNCWORKER_MYSQL_DSN": testenv.MySQLDSNWithTimeout(), "SYNCWORKER_AMQP_URL": b.URL}
	code, out, errOut := runCLI(t, env, "", "demo", "--orders", "40", "--writers", "2", "--prefix", prefix,
		"--db-prefix", "swt_demo_"+testenv.RandomSuffix(8))
	if code != 0 || !strings.Contains(out, "OK: the replica matches the source") || !strings.Contains(out, "0 with wrong totals") {
		t.Fatalf("code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "100%") {
		t.Errorf("no final progress line on stderr:\n%s", errOut)
	}

	code, _, errOut = runCLI(t, map[string]string{}, "", "demo")
	if code != 1 || !strings.Contains(errOut, "--dsn") {
		t.Fatalf("missing DSN: code %d err %q", code, errOut)
	}
}
