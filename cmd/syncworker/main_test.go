package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// runCLI runs the command line in-process and returns its exit code and output. The command
// sees only the environment variables in env, so the caller's environment cannot leak in.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &cliEnv{stdout: &out, stderr: &errOut, stdin: strings.NewReader(stdin), getenv: func(k string) string {
		return env[k]
	}}
	code = run(context.Background(), e, args)
	return code, out.String(), errOut.String()
}

func TestUsageListsCommandsAndUnknownCommandFails(t *testing.T) {
	code, out, _ := runCLI(t, nil, "", "--help")
	if code != 0 || !strings.Contains(out, "migrate") || !strings.Contains(out, "version") {
		t.Fatalf("help: code %d, output %q", code, out)
	}
	code, _, errOut := runCLI(t, nil, "", "no-such-command")
	if code != 2 || !strings.Contains(errOut, `unknown command "no-such-command"`) {
		t.Fatalf("unknown command: code %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, nil, "", "migrate", "--no-such-flag")
	if code != 2 || !strings.Contains(errOut, "no-such-flag") {
		t.Fatalf("bad flag: code %d, stderr %q", code, errOut)
	}
	code, out, _ = runCLI(t, nil, "", "version")
	if code != 0 || !strings.HasPrefix(out, "syncworker ") {
		t.Fatalf("version: code %d, output %q", code, out)
	}
}

// Every command answers --help with its usage and flags and exits 0.
func TestEveryCommandHasHelp(t *testing.T) {
	for name := range commands {
		args := append(strings.Fields(name), "--help")
		code, _, errOut := runCLI(t, nil, "", args...)
		if code != 0 || !strings.Contains(errOut, "Usage: syncworker "+name) {
			t.Errorf("%s --help: code %d, stderr %q", name, code, errOut)
		}
	}
}

// A group of commands ("topology", "outbox dead") answers --help with its commands; without a
// command, or with an unknown one, it says so and lists them, exiting 2. A command without
// flags shows no empty "Flags:" section.
func TestCommandGroupsListTheirCommands(t *testing.T) {
	for _, group := range []string{"topology", "dlq", "outbox", "outbox dead"} {
		code, out, _ := runCLI(t, nil, "", append(strings.Fields(group), "--help")...)
		if code != 0 || !strings.Contains(out, "Usage: syncworker "+group+" COMMAND") || strings.Count(out, "  "+group+" ") < 3 {
			t.Errorf("%s --help: code %d, stdout %q", group, code, out)
		}
		code, _, errOut := runCLI(t, nil, "", strings.Fields(group)...)
		if code != 2 || !strings.Contains(errOut, "syncworker "+group+": which one?") || strings.Count(errOut, "  "+group+" ") < 3 {
			t.Errorf("%s alone: code %d, stderr %q", group, code, errOut)
		}
	}
	code, _, errOut := runCLI(t, nil, "", "topology", "aply", "-f", "x.yaml")
	if code != 2 || !strings.Contains(errOut, `syncworker topology: unknown command "aply"`) || !strings.Contains(errOut, "topology apply") {
		t.Errorf("topology aply: code %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, nil, "", "version", "--help")
	if code != 0 || errOut != "Usage: syncworker version\n" {
		t.Errorf("version --help: code %d, stderr %q", code, errOut)
	}
}
