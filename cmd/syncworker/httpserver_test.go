package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestOpsHandlerHealthReadyAndMetrics(t *testing.T) {
	ready := newReadiness()
	srv := httptest.NewServer(opsHandler(newRegistry(), ready))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Fatalf("/readyz with no checks = %d, want 503 (nothing has started)", code)
	}
	var dbUp bool
	ready.add("database", func(context.Context) error {
		if !dbUp {
			return errors.New("database unreachable")
		}
		return nil
	})
	ready.add("broker", func(context.Context) error { return nil })
	code, body := get("/readyz")
	var got struct {
		Ready  bool
		Checks map[string]string
	}
	json.Unmarshal([]byte(body), &got)
	if code != 503 || got.Ready || got.Checks["database"] != "database unreachable" || got.Checks["broker"] != "ok" {
		t.Fatalf("/readyz with a failing check = %d %s", code, body)
	}
	dbUp = true
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("/readyz with passing checks = %d %s", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics = %d, lacks go_goroutines", code)
	}
}

// A check that does not heed its context (a broker dial in progress) does not hold /readyz past
// readinessTimeout: it is reported as not answering, the others as they are.
func TestReadinessAnswersWhileACheckHangs(t *testing.T) {
	ready := newReadiness()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	ready.add("broker", func(context.Context) error { <-release; return nil })
	ready.add("database", func(context.Context) error { return nil })
	ok, states := ready.report(context.Background()) // the broker check returns only at cleanup
	if ok || states["database"] != "ok" || !strings.Contains(states["broker"], "no answer within") {
		t.Errorf("ready %v, states %v; want not ready, database ok, broker not answering", ok, states)
	}
}
