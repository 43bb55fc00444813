package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/syncworker/syncworker/internal/demo"
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
	dbPrefix := "swt_demo_" + testenv.RandomSuffix(8)
	t.Cleanup(func() { // the demo drops them itself when it succeeds
		if server, err := sql.Open("mysql", testenv.MySQLDSNWithTimeout()); err == nil {
			for _, part := range []string{"orders", "replica", "projection"} {
				server.Exec("DROP DATABASE IF EXISTS " + dbPrefix + "_" + part) //nolint:errcheck // best effort
			}
			server.Close()
		}
	})
	code, out, errOut := runCLI(t, env, "", "demo", "--orders", "40", "--writers", "2", "--prefix", prefix, "--db-prefix", dbPrefix)
	if code != 0 || !strings.Contains(out, "OK: the replica matches the source") || !strings.Contains(out, "0 with wrong totals") {
		t.Fatalf("code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "100%") {
		t.Errorf("no final progress line on stderr:\n%s", errOut)
	}

	code, _, errOut = runCLI(t, map[string]string{}, "", "demo")
	if code != 2 || !strings.Contains(errOut, "--dsn") {
		t.Fatalf("missing DSN: code %d err %q", code, errOut)
	}
}

// The docker-compose.yml arrangement without Docker: one-shot migrate and topology apply,
// relay and replica consumer as commands of their own, then demo --external-workers.
func TestDemoWithExternalWorkersLikeCompose(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	prefix := b.Prefix + "demo"
	b.Track(prefix+".orders", prefix+".replica", prefix+".projection")
	for _, q := range []string{prefix + ".replica", prefix + ".projection"} {
		b.Track(q+".retry.1s", q+".retry.5s", q+".parked")
	}
	dbPrefix := "swt_demo_" + testenv.RandomSuffix(8)
	server, err := sql.Open("mysql", testenv.MySQLDSNWithTimeout())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() }) // after the drops below (cleanups run last-in, first-out)
	dsn := map[string]string{}
	for _, part := range []string{"orders", "replica", "projection"} {
		name := dbPrefix + "_" + part
		if _, err := server.Exec("CREATE DATABASE " + name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := server.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
				t.Errorf("drop %s: %v", name, err)
			}
		})
		dsn[part] = testenv.MySQLDSNFor(name)
		if code, out, errOut := runCLI(t, nil, "", "migrate", "--dsn", dsn[part]); code != 0 {
			t.Fatalf("migrate %s: %s %s", part, out, errOut)
		}
	}
	topoFile := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(topoFile, demo.TopologyYAML(prefix), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, nil, "", "topology", "apply", "-f", topoFile, "--amqp-url", b.URL); code != 0 {
		t.Fatalf("topology apply: %s %s", out, errOut)
	}

	ctx, stop := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	for _, args := range [][]string{
		{"relay", "--group", "demo", "--dsn", dsn["orders"], "--amqp-url", b.URL},
		{"consume", "--config", "../../examples/demo/replica.yaml", "--queue", prefix + ".replica", "--dsn", dsn["replica"], "--amqp-url", b.URL},
	} {
		workers.Add(1)
		go func() {
			defer workers.Done()
			var out lockedBuffer
			e := &cliEnv{stdout: &out, stderr: &out, stdin: strings.NewReader(""), getenv: func(string) string { return "" }}
			if code := run(ctx, e, args); code != 0 {
				t.Errorf("%s exited %d:\n%s", args[0], code, out.String())
			}
		}()
	}
	defer func() { stop(); workers.Wait() }()

	code, out, errOut := runCLI(t, nil, "", "demo", "--external-workers", "--orders", "40", "--writers", "2",
		"--prefix", prefix, "--db-prefix", dbPrefix, "--dsn", testenv.MySQLDSNWithTimeout(), "--amqp-url", b.URL, "--timeout", "45s")
	if code != 0 || !strings.Contains(out, "OK: the replica matches the source") {
		t.Fatalf("demo --external-workers: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
