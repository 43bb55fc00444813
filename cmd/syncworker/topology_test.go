package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncworker/syncworker/internal/testenv"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// An invalid file is reported in full before any connection: the URL here goes nowhere.
func TestTopologyInvalidFileNeedsNoBroker(t *testing.T) {
	path := writeFile(t, "queues:\n  - name: q\n    type: classic\n    delivery_limit: 3\n  - name: q\n    colour: red\n")
	for _, cmd := range []string{"plan", "apply", "validate"} {
		args := []string{"topology", cmd, "-f", path}
		if cmd != "validate" {
			args = append(args, "--amqp-url", "amqp://guest:guest@127.0.0.1:1/")
		}
		code, _, stderr := runCLI(t, nil, "", args...)
		if code != exitTopologyInvalid {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", cmd, code, exitTopologyInvalid, stderr)
		}
		for _, want := range []string{"(3 problems)", path + ":4:", path + ":5:", path + ":6:", `unknown key "colour"`} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", cmd, want, stderr)
			}
		}
	}
}

func TestTopologyPlanAndApply(t *testing.T) {
	b := testenv.NewBroker(t)
	q, x := b.Name("q"), b.Name("x")
	good := writeFile(t, "exchanges: [{name: "+x+", type: fanout}]\nqueues: [{name: "+q+", message_ttl: 1s}]\nbindings: [{exchange: "+x+", queue: "+q+"}]\n")
	changed := writeFile(t, "queues: [{name: "+q+", message_ttl: 5s}]\n")
	url := []string{"--amqp-url", b.URL}

	code, out, stderr := runCLI(t, nil, "", append([]string{"topology", "plan", "-f", good}, url...)...)
	if code != 0 || !strings.Contains(out, "create   queue    "+q) || !strings.Contains(out, "3 to create") {
		t.Errorf("plan before apply: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = runCLI(t, nil, "", append([]string{"topology", "apply", "-f", good}, url...)...)
	// As plan counted: the binding between two new entities is created, not merely ensured.
	if code != 0 || !strings.Contains(out, "3 created, 0 unchanged, 0 bindings ensured") || !strings.Contains(out, "created  binding "+x) {
		t.Errorf("apply: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = runCLI(t, nil, "", append([]string{"topology", "apply", "-f", good}, url...)...)
	if code != 0 || !strings.Contains(out, "0 created, 2 unchanged, 1 bindings ensured") {
		t.Errorf("second apply: exit %d\n%s%s", code, out, stderr)
	}
	for _, cmd := range []string{"plan", "apply"} {
		code, out, stderr = runCLI(t, nil, "", append([]string{"topology", cmd, "-f", changed}, url...)...)
		if code != exitTopologyConflict || !strings.Contains(out, "x-message-ttl: broker has 1000, file says 5000") ||
			(cmd == "plan" && !strings.Contains(stderr, "1 entity on the broker differs from")) {
			t.Errorf("%s of a changed file: exit %d, want %d\n%s%s", cmd, code, exitTopologyConflict, out, stderr)
		}
	}
	if !strings.Contains(stderr, "nothing was changed") {
		t.Errorf("apply conflict message:\n%s", stderr)
	}
}
