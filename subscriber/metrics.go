package subscriber

import "time"

// Metrics receives the subscriber's counters. Implementations must be safe for concurrent use
// and fast; the zero NopMetrics ignores everything. Embed NopMetrics to implement a subset.
type Metrics interface {
	// Consumed counts deliveries whose effect committed (applied or duplicate).
	Consumed(n int)
	// DuplicateSkipped counts deliveries skipped because the inbox already held their id.
	DuplicateSkipped(n int)
	// Retried counts messages moved to a retry tier after failed attempt number attempt.
	Retried(attempt int)
	// Parked counts messages moved to the parking lot.
	Parked()
	// StaleRowEvent counts row-sync events skipped because a newer version was applied.
	StaleRowEvent(table string)
	// BatchApplied observes one committed group-commit transaction: its size and latency.
	BatchApplied(size int, latency time.Duration)
}

// NopMetrics is a Metrics that does nothing.
type NopMetrics struct{}

func (NopMetrics) Consumed(int)                    {}
func (NopMetrics) DuplicateSkipped(int)            {}
func (NopMetrics) Retried(int)                     {}
func (NopMetrics) Parked()                         {}
func (NopMetrics) StaleRowEvent(string)            {}
func (NopMetrics) BatchApplied(int, time.Duration) {}
