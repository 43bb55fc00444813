package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// relayMetrics is publisher.Metrics on Prometheus. Names are listed in README.md (Metrics).
type relayMetrics struct {
	published, returned, nacked, retried, dead prometheus.Counter
	batchSize, confirmLatency                  prometheus.Histogram
	backlog, oldestAge                         prometheus.Gauge
}

func newRelayMetrics(reg prometheus.Registerer) *relayMetrics {
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "syncworker_relay_" + name + "_total", Help: help})
		reg.MustRegister(c)
		return c
	}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(g)
		return g
	}
	m := &relayMetrics{
		published: counter("published", "Outbox rows confirmed by the broker and deleted."),
		returned:  counter("returned", "Publishes the broker returned as unroutable."),
		nacked:    counter("nacked", "Publishes the broker nacked."),
		retried:   counter("retried", "Failed rows scheduled for another attempt."),
		dead:      counter("dead", "Rows moved to the dead table after their last attempt."),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "syncworker_relay_batch_size",
			Help: "Rows published by one sweep of a partition.", Buckets: prometheus.ExponentialBuckets(1, 4, 7)}),
		confirmLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "syncworker_relay_confirm_latency_seconds",
			Help: "Time from publish to the broker's confirm, per message.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		backlog:   gauge("syncworker_outbox_backlog", "Rows waiting in the outbox (sampled every relay.stats_interval)."),
		oldestAge: gauge("syncworker_outbox_oldest_pending_age_seconds", "Age of the oldest outbox row (sampled every relay.stats_interval)."),
	}
	reg.MustRegister(m.batchSize, m.confirmLatency)
	return m
}

func (m *relayMetrics) Published(n int)                  { m.published.Add(float64(n)) }
func (m *relayMetrics) Returned(n int)                   { m.returned.Add(float64(n)) }
func (m *relayMetrics) Nacked(n int)                     { m.nacked.Add(float64(n)) }
func (m *relayMetrics) Retried(n int)                    { m.retried.Add(float64(n)) }
func (m *relayMetrics) Dead(n int)                       { m.dead.Add(float64(n)) }
func (m *relayMetrics) BatchSize(n int)                  { m.batchSize.Observe(float64(n)) }
func (m *relayMetrics) ConfirmLatency(d time.Duration)   { m.confirmLatency.Observe(d.Seconds()) }
func (m *relayMetrics) Backlog(n int64)                  { m.backlog.Set(float64(n)) }
func (m *relayMetrics) OldestPendingAge(d time.Duration) { m.oldestAge.Set(d.Seconds()) }
