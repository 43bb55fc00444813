package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
)

// background is a command running in-process until the test stops it.
type background struct {
	stdout, stderr *lockedBuffer
	cancel         context.CancelFunc
	done           chan int
	once           sync.Once
}

// startCommand runs args in-process with only env visible; the test's cleanup stops it and
// fails when it does not exit 0.
func startCommand(t *testing.T, env map[string]string, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bg := &background{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, cancel: cancel, done: make(chan int, 1)}
	e := &cliEnv{stdout: bg.stdout, stderr: bg.stderr, stdin: strings.NewReader(""), getenv: func(k string) string { return env[k] }}
	go func() { bg.done <- run(ctx, e, args) }()
	t.Cleanup(func() { bg.stop(t) })
	return bg
}

// stop cancels the command and waits for it (once).
func (bg *background) stop(t *testing.T) {
	t.Helper()
	bg.once.Do(func() {
		bg.cancel()
		select {
		case code := <-bg.done:
			if code != 0 {
				t.Errorf("command exited %d; stderr:\n%s", code, bg.stderr.String())
			}
		case <-time.After(45 * time.Second):
			t.Errorf("command did not stop within 45s of cancel")
		}
	})
}

// opsAddr waits for the "serving /metrics" log line and returns its address.
func (bg *background) opsAddr(t *testing.T) string {
	t.Helper()
	var addr string
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		for _, line := range strings.Split(bg.stderr.String(), "\n") {
			var entry struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && strings.HasPrefix(entry.Msg, "serving /metrics") {
				addr = entry.Addr
				return true, ""
			}
		}
		return false, "no 'serving /metrics' line in stderr:\n" + bg.stderr.String()
	})
	return "http://" + addr
}

// httpGet returns the status and body of url, or 0 when it cannot connect.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue returns the value of the sample named exactly series (with its labels, if any)
// in a Prometheus text exposition, or -1 when absent.
func metricValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return -1
}
