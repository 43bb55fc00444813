package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// readiness holds the named checks behind /readyz. A component registers its check when it
// starts; the process is ready when every check passes.
type readiness struct {
	mu     sync.Mutex
	checks map[string]func(context.Context) error
}

func newReadiness() *readiness { return &readiness{checks: map[string]func(context.Context) error{}} }

// add registers a check under name, replacing an earlier one.
func (r *readiness) add(name string, check func(context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks[name] = check
}

// readinessTimeout bounds /readyz: a check that has not answered by then counts as failed.
const readinessTimeout = 2 * time.Second

// report runs every check at once and returns each one's state within readinessTimeout, also
// when a check does not heed its context (a dial in progress): that one is reported as not
// answering, and finishes on its own.
func (r *readiness) report(ctx context.Context) (ready bool, states map[string]string) {
	r.mu.Lock()
	checks := make(map[string]func(context.Context) error, len(r.checks))
	for k, v := range r.checks {
		checks[k] = v
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, readinessTimeout)
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(checks)) // buffered: a late check never blocks
	for name, check := range checks {
		go func() { results <- result{name, check(ctx)} }()
	}
	defer cancel() // a check still running is told to give up
	ready, states = len(checks) > 0, map[string]string{}
	for range checks {
		select {
		case res := <-results:
			if res.err != nil {
				ready = false
				states[res.name] = res.err.Error()
			} else {
				states[res.name] = "ok"
			}
		case <-ctx.Done():
			for name := range checks {
				if _, answered := states[name]; !answered {
					ready = false
					states[name] = fmt.Sprintf("no answer within %s", readinessTimeout)
				}
			}
			return ready, states
		}
	}
	return ready, states
}

// newRegistry returns a Prometheus registry with the Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// dbStatsCollector exports db's connection pool (go_sql_*: open, in use, waits, connections
// closed for the idle limit or idle time) labelled db_name="syncworker".
func dbStatsCollector(db *sql.DB) prometheus.Collector {
	return collectors.NewDBStatsCollector(db, "syncworker")
}

// opsHandler serves /metrics, /healthz (the process is alive) and /readyz (every readiness
// check passes; the body lists each check's state as JSON).
func opsHandler(reg *prometheus.Registry, ready *readiness) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n")) //nolint:errcheck // client went away
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ok, states := ready.report(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(map[string]any{"ready": ok, "checks": states}) //nolint:errcheck // client went away
	})
	return mux
}

// serveOps serves opsHandler on addr until ctx ends. An empty addr serves nothing.
func serveOps(ctx context.Context, addr string, reg *prometheus.Registry, ready *readiness, log *zap.Logger) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: opsHandler(reg, ready), ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving /metrics, /healthz and /readyz", zap.String("addr", l.Addr().String()))
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown) //nolint:errcheck // best effort at exit
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
