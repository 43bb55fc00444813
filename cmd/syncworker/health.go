package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// health asks a running relay or consume over its ops server whether it is alive (/healthz) or
// ready (/readyz) and answers with its exit code, so a container health check needs no curl or
// wget (the image is distroless: it holds nothing but syncworker).

func init() {
	register(&command{name: "health", summary: "ask a running relay or consume over http.listen whether it is alive or ready (exit 0 or 1)", run: runHealth})
}

// healthBodyLimit bounds what is read and printed of an answer: /readyz's JSON is a few lines.
const healthBodyLimit = 4096

func runHealth(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "health", "[--ready] [--config FILE] [--http-listen ADDR] [--timeout D]")
	need := needs{}
	b := bindSettings(fs, need)
	b.str("http-listen", "the ops address of the relay or consume to ask, as it was started with (http.listen, env SYNCWORKER_HTTP_LISTEN), e.g. :9090", func(s *settings) *string { return &s.HTTP.Listen })
	ready := fs.Bool("ready", false, "ask /readyz (every readiness check passes) instead of /healthz (the process answers)")
	timeout := fs.Duration("timeout", 5*time.Second, "longest wait for the answer (/readyz answers within 2s)")
	s, env, err := b.parse(env, args, need)
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return usageErrorf("--timeout %s: must be positive", *timeout)
	}
	if s.HTTP.Listen == "" {
		return usageErrorf("nothing to ask: http.listen is empty; give the relay's or consume's address with --http-listen, SYNCWORKER_HTTP_LISTEN or http.listen in --config")
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	target := "http://" + dialableAddr(s.HTTP.Listen) + path
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	code, body, err := askOpsServer(ctx, target)
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	fmt.Fprintln(env.stdout, body)
	if code != http.StatusOK {
		if *ready {
			return fmt.Errorf("%s: not ready (HTTP %d)", target, code)
		}
		return fmt.Errorf("%s: HTTP %d", target, code)
	}
	return nil
}

// dialableAddr turns a listen address into one to connect to: a server listening on every
// interface (":9090", "0.0.0.0:9090", "[::]:9090") is asked on the loopback address.
func dialableAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil { // validated as host:port already
		return listen
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// askOpsServer returns the status and the trimmed start of the body of a GET of target, with no
// proxy: the ops server is asked directly.
func askOpsServer(ctx context.Context, target string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, "", err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, "", errors.New("no answer in time (see --timeout)")
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the caller names the URL already
		}
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, healthBodyLimit))
	if err != nil {
		return 0, "", fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, strings.TrimSpace(string(body)), nil
}
