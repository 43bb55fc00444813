package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// health asks the ops server the relay and consume serve, found by their own http.listen (a
// server on every interface is asked on the loopback address), and tells by its exit code.
func TestHealthAsksTheOpsServer(t *testing.T) {
	ready := newReadiness()
	var brokerDown error = errors.New("broker: connection refused")
	ready.add("database", func(context.Context) error { return nil })
	ready.add("broker", func(context.Context) error { return brokerDown })
	srv := httptest.NewServer(opsHandler(newRegistry(), ready))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	listen := map[string]string{"SYNCWORKER_HTTP_LISTEN": ":" + port}

	if code, out, errOut := runCLI(t, listen, "", "health"); code != 0 || out != "ok\n" {
		t.Fatalf("health of a live process: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut := runCLI(t, listen, "", "health", "--ready")
	if code != 1 || !strings.Contains(out, "connection refused") || !strings.Contains(errOut, "not ready (HTTP 503)") {
		t.Fatalf("health --ready with a failing check: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	brokerDown = nil
	if code, out, errOut := runCLI(t, listen, "", "health", "--ready"); code != 0 || !strings.Contains(out, `"ready":true`) {
		t.Fatalf("health --ready with passing checks: code %d, stdout %q, stderr %q", code, out, errOut)
	}

	// The flag wins over the environment, and the config file is read as the relay reads it.
	if code, _, errOut := runCLI(t, map[string]string{"SYNCWORKER_HTTP_LISTEN": "127.0.0.1:1"}, "", "health", "--http-listen", "0.0.0.0:"+port); code != 0 {
		t.Fatalf("health --http-listen 0.0.0.0:%s: code %d, stderr %q", port, code, errOut)
	}
	config := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(config, []byte("http:\n  listen: \"127.0.0.1:"+port+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, nil, "", "health", "--config", config); code != 0 {
		t.Fatalf("health --config: code %d, stderr %q", code, errOut)
	}
}

func TestHealthFailsWhenNothingAnswers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	code, _, errOut := runCLI(t, nil, "", "health", "--http-listen", addr)
	if code != 1 || !strings.Contains(errOut, "http://"+addr+"/healthz") || !strings.Contains(errOut, "refused") || strings.Contains(errOut, `Get "`) {
		t.Fatalf("health with nothing listening: code %d, stderr %q", code, errOut)
	}

	stuck := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(stuck)
	code, _, errOut = runCLI(t, nil, "", "health", "--ready", "--timeout", "200ms", "--http-listen", srv.Listener.Addr().String())
	if code != 1 || !strings.Contains(errOut, "no answer in time") {
		t.Fatalf("health of a process that does not answer: code %d, stderr %q", code, errOut)
	}
}

func TestHealthNeedsAnAddress(t *testing.T) {
	code, _, errOut := runCLI(t, nil, "", "health")
	if code != 2 || !strings.Contains(errOut, "http.listen is empty") {
		t.Fatalf("health without an address: code %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, nil, "", "health", "--http-listen", "9090")
	if code != 2 || !strings.Contains(errOut, "http.listen") || !strings.Contains(errOut, "not host:port") {
		t.Fatalf("health with a bad address: code %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, map[string]string{"SYNCWORKER_HTTP_LISTEN": ":9090"}, "", "health", "--timeout", "0s")
	if code != 2 || !strings.Contains(errOut, "--timeout") {
		t.Fatalf("health --timeout 0s: code %d, stderr %q", code, errOut)
	}
}
