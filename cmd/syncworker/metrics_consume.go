package main

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// consumeMetrics is subscriber.Metrics on Prometheus. Names are listed in README.md (Metrics).
type consumeMetrics struct {
	consumed, duplicates, parked prometheus.Counter
	retried, stale               *prometheus.CounterVec
	batchSize, applyLatency      prometheus.Histogram
}

func newConsumeMetrics(reg prometheus.Registerer) *consumeMetrics {
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "syncworker_consume_" + name + "_total", Help: help})
		reg.MustRegister(c)
		return c
	}
	m := &consumeMetrics{
		consumed:   counter("consumed", "Deliveries whose effect committed (applied or duplicate)."),
		duplicates: counter("duplicates_skipped", "Deliveries skipped because the inbox already held their message id."),
		parked:     counter("parked", "Messages moved to the parking lot."),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncworker_consume_retried_total",
			Help: "Messages moved to a retry tier, by the failed attempt's number."}, []string{"attempt"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncworker_consume_stale_row_events_total",
			Help: "Row-sync events skipped because a newer version of the row was applied, by target table."}, []string{"table"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "syncworker_consume_batch_size",
			Help: "Deliveries committed by one transaction (group commit).", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		applyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "syncworker_consume_apply_latency_seconds",
			Help: "Time to apply and commit one batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
	}
	reg.MustRegister(m.retried, m.stale, m.batchSize, m.applyLatency)
	return m
}

func (m *consumeMetrics) Consumed(n int)         { m.consumed.Add(float64(n)) }
func (m *consumeMetrics) DuplicateSkipped(n int) { m.duplicates.Add(float64(n)) }
func (m *consumeMetrics) Parked()                { m.parked.Inc() }
func (m *consumeMetrics) Retried(attempt int) {
	m.retried.WithLabelValues(strconv.Itoa(min(attempt, 20))).Inc() // bounded label values
}
func (m *consumeMetrics) StaleRowEvent(table string) { m.stale.WithLabelValues(table).Inc() }
func (m *consumeMetrics) BatchApplied(size int, latency time.Duration) {
	m.batchSize.Observe(float64(size))
	m.applyLatency.Observe(latency.Seconds())
}
