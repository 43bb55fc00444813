package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/faultproxy"
	"github.com/syncworker/syncworker/internal/testenv"
)

// The broker check of /readyz fails while the broker does not answer (a network partition),
// not only once heartbeats give up on the probe's connection, and passes again when it does.
func TestBrokerReadinessFailsWhileTheBrokerDoesNotAnswer(t *testing.T) {
	broker := testenv.NewBroker(t)
	proxy, err := faultproxy.New(broker.Host())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	s := &settings{}
	s.AMQP.URL = broker.URLVia(proxy.Addr())
	probe := newBrokerProbe(s, "syncworker readiness test")
	t.Cleanup(probe.close)
	ready := newReadiness()
	ready.add("broker", probe.check)
	ctx := context.Background()
	if ok, states := ready.report(ctx); !ok {
		t.Fatalf("not ready with the broker answering: %v", states)
	}

	proxy.Pause()
	if ok, states := ready.report(ctx); ok || !strings.Contains(states["broker"], "no answer") {
		t.Errorf("broker paused: ready %v, %v; want not ready, no answer", ok, states)
	}
	proxy.Resume()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		ok, states := ready.report(ctx)
		return ok, fmt.Sprintf("not ready after the broker answers again: %v", states)
	})
}
