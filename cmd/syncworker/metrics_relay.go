package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncworker/syncworker/publisher"
)

// relayMetrics is publisher.Metrics, and its optional publisher.ReadMetrics, on Prometheus.
// Names are listed in README.md (Metrics).
type relayMetrics struct {
	published, returned, nacked, retried, dead prometheus.Counter
	ownReads, handOffs, deleteStatements       prometheus.Counter
	watchedRows                                prometheus.Counter
	batchSize, publishLatency, confirmLatency  prometheus.Histogram
	backlog, oldestAge                         prometheus.Gauge
}

var _ publisher.ReadMetrics = (*relayMetrics)(nil) // found by a type assertion: keep it implemented

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
		ownReads:  counter("own_reads", "Reads a partition made of its own range for a sweep."),
		handOffs:  counter("handoffs", "Batches a waiting partition took from the watcher's read instead of reading its range."),
		watchedRows: counter("watched_rows",
			"Rows the watcher read while looking for new rows for waiting partitions."),
		deleteStatements: counter("delete_statements",
			"DELETEs of published rows; partitions settling at the same time share one."),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "syncworker_relay_batch_size",
			Help: "Rows published by one sweep of a partition.", Buckets: prometheus.ExponentialBuckets(1, 4, 7)}),
		publishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "syncworker_relay_publish_latency_seconds",
			Help: "Time from the outbox INSERT to the publish, per message (measured on the database clock).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)}),
		confirmLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "syncworker_relay_confirm_latency_seconds",
			Help: "Time from publish to the broker's confirm, per message.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		backlog:   gauge("syncworker_outbox_backlog", "Rows waiting in the outbox (sampled every relay.stats_interval)."),
		oldestAge: gauge("syncworker_outbox_oldest_pending_age_seconds", "Age of the oldest outbox row (sampled every relay.stats_interval)."),
	}
	reg.MustRegister(m.batchSize, m.publishLatency, m.confirmLatency)
	return m
}

func (m *relayMetrics) Published(n int)                  { m.published.Add(float64(n)) }
func (m *relayMetrics) Returned(n int)                   { m.returned.Add(float64(n)) }
func (m *relayMetrics) Nacked(n int)                     { m.nacked.Add(float64(n)) }
func (m *relayMetrics) Retried(n int)                    { m.retried.Add(float64(n)) }
func (m *relayMetrics) Dead(n int)                       { m.dead.Add(float64(n)) }
func (m *relayMetrics) BatchSize(n int)                  { m.batchSize.Observe(float64(n)) }
func (m *relayMetrics) PublishLatency(d time.Duration)   { m.publishLatency.Observe(d.Seconds()) }
func (m *relayMetrics) ConfirmLatency(d time.Duration)   { m.confirmLatency.Observe(d.Seconds()) }
func (m *relayMetrics) Backlog(n int64)                  { m.backlog.Set(float64(n)) }
func (m *relayMetrics) OldestPendingAge(d time.Duration) { m.oldestAge.Set(d.Seconds()) }
func (m *relayMetrics) OwnRead()                         { m.ownReads.Inc() }
func (m *relayMetrics) HandOff(int)                      { m.handOffs.Inc() }
func (m *relayMetrics) DeleteStatement(int)              { m.deleteStatements.Inc() }
func (m *relayMetrics) Watched(n int)                    { m.watchedRows.Add(float64(n)) }
