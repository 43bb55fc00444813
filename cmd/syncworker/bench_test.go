package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/syncworker/syncworker/internal/testenv"
)

// TestBenchScenariosReportStableJSON runs each scenario small and checks the JSON a user
// scripts against: the environment line first, then one object per result with its fields.
func TestBenchScenariosReportStableJSON(t *testing.T) {
	testenv.Integration(t)
	testenv.NewDatabase(t) // fails with instructions when MySQL is down
	testenv.NewBroker(t)   // likewise for RabbitMQ
	env := map[string]string{"SYNCWORKER_MYSQL_DSN": testenv.MySQLDSN(), "SYNCWORKER_AMQP_URL": testenv.AMQPURL()}
	bin := buildBinary(t) // the relay scenarios run the relay as a child process
	for _, tc := range []struct {
		scenario string
		want     []string // scenario names expected, in order
		fields   []string
		flags    []string
	}{
		{"ceiling", []string{"ceiling"}, []string{"msgs_per_s"}, nil},
		{"write", []string{"write-base", "write-1", "write-10", "write-10-plain"}, []string{"p50_ms", "p99_ms"}, nil},
		// Alone, relay measures its own ceiling first.
		{"relay", []string{"ceiling", "relay"}, []string{"ceiling_msgs_per_s", "ratio", "peak_rss_mb"}, []string{"--pairs", "2"}},
		{"backlog", []string{"backlog-small", "backlog-large"}, []string{"peak_rss_mb"}, nil},
		{"latency", []string{"latency"}, []string{"p50_ms", "p95_ms", "p99_ms", "max_ms"}, []string{"--duration", "1s", "--rate", "200", "--handler-delay", "1ms", "--failing", "4"}},
		{"apply", []string{"apply", "apply-batch-1"}, nil, nil},
	} {
		args := append([]string{"bench", tc.scenario, "--messages", "300", "--json", "--relay-binary", bin}, tc.flags...)
		code, out, errOut := runCLI(t, env, "", args...)
		if code != 0 {
			t.Fatalf("bench %s: exit %d: %s", tc.scenario, code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var envInfo map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &envInfo); err != nil || envInfo["cpus"] == nil || envInfo["rabbitmq"] == "" ||
			envInfo["mysql_round_trip_us"] == nil || envInfo["mysql_round_trip_us"].(float64) <= 0 {
			t.Fatalf("first line is not the environment: %q (%v)", lines[0], err)
		}
		if len(lines)-1 != len(tc.want) {
			t.Fatalf("bench %s printed %d results, want %d: %s", tc.scenario, len(lines)-1, len(tc.want), out)
		}
		for i, line := range lines[1:] {
			var r map[string]any
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("not JSON: %q", line)
			}
			if r["scenario"] != tc.want[i] || r["seconds"] == nil || r["messages"] == nil {
				t.Fatalf("result %q lacks scenario/seconds/messages", line)
			}
			fields := tc.fields
			if r["scenario"] == "ceiling" {
				fields = nil // relay's own ceiling line
			}
			for _, f := range append([]string{"msgs_per_s"}, fields...) {
				if v, ok := r[f].(float64); !ok || v <= 0 {
					t.Fatalf("result %q: %s is not a positive number", line, f)
				}
			}
			// 200 msgs/s for 1 s from 8 writers, every 4th of a writer's to a missing exchange:
			// about 150 counted, the 50 failing ones neither counted nor lost.
			if tc.scenario == "latency" && (r["lost"] != float64(0) || r["messages"].(float64) == 0 || r["messages"].(float64) > 152 ||
				!strings.Contains(fmt.Sprint(r["note"]), "the handler takes 1ms per message") ||
				!strings.Contains(fmt.Sprint(r["note"]), "every 4th message of a writer to a missing exchange")) {
				t.Fatalf("latency lost messages, sent none, counted failing ones or ignored --handler-delay or --failing: %q", line)
			}
			if r["scenario"] == "relay" && !strings.Contains(fmt.Sprint(r["note"]), "median of 2 ceiling/relay pairs, ratios ") {
				t.Fatalf("relay with --pairs 2: note %q does not report the two pairs", r["note"])
			}
		}
	}
	code, _, errOut := runCLI(t, env, "", "bench", "relay", "--pairs", "0")
	if code == 0 || !strings.Contains(errOut, "--pairs must be positive") {
		t.Fatalf("--pairs 0: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCLI(t, env, "", "bench", "latency", "--handler-delay", "-1ms")
	if code == 0 || !strings.Contains(errOut, "--handler-delay must not be negative") {
		t.Fatalf("--handler-delay -1ms: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCLI(t, env, "", "bench", "latency", "--failing", "1")
	if code == 0 || !strings.Contains(errOut, "--failing 1: want 0") {
		t.Fatalf("--failing 1: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCLI(t, env, "", "bench", "nope")
	if code == 0 || !strings.Contains(errOut, `unknown scenario "nope"`) {
		t.Fatalf("unknown scenario: exit %d, %q", code, errOut)
	}
}
