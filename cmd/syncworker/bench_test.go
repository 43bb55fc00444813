package main

import (
	"encoding/json"
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
	for _, tc := range []struct {
		scenario string
		want     []string // scenario names expected, in order
		fields   []string
	}{
		{"ceiling", []string{"ceiling"}, []string{"msgs_per_s"}},
		{"write", []string{"write-base", "write-1", "write-10"}, []string{"p50_ms", "p99_ms"}},
	} {
		code, out, errOut := runCLI(t, env, "", "bench", tc.scenario, "--messages", "300", "--json")
		if code != 0 {
			t.Fatalf("bench %s: exit %d: %s", tc.scenario, code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var envInfo map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &envInfo); err != nil || envInfo["cpus"] == nil || envInfo["rabbitmq"] == "" {
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
			for _, f := range append([]string{"msgs_per_s"}, tc.fields...) {
				if v, ok := r[f].(float64); !ok || v <= 0 {
					t.Fatalf("result %q: %s is not a positive number", line, f)
				}
			}
		}
	}
	code, _, errOut := runCLI(t, env, "", "bench", "nope")
	if code == 0 || !strings.Contains(errOut, `unknown scenario "nope"`) {
		t.Fatalf("unknown scenario: exit %d, %q", code, errOut)
	}
}
