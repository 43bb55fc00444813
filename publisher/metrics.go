package publisher

import "time"

// Metrics receives the relay's counters and histograms. The operations side implements it
// (Prometheus in cmd/syncworker); the default discards everything. Implementations must be
// safe for concurrent use and cheap: they are called on the publishing path.
type Metrics interface {
	Published(n int)                  // rows confirmed by the broker and deleted
	Returned(n int)                   // publishes returned as unroutable (basic.return)
	Nacked(n int)                     // publishes the broker nacked
	Retried(n int)                    // failed rows scheduled for another attempt
	Dead(n int)                       // rows moved to the dead table
	BatchSize(n int)                  // rows published by one sweep of a partition
	PublishLatency(d time.Duration)   // outbox INSERT to publish, per message (database clock)
	ConfirmLatency(d time.Duration)   // publish to confirm, per message
	Backlog(n int64)                  // rows in the outbox (sampled every StatsInterval)
	OldestPendingAge(d time.Duration) // age of the oldest row (sampled every StatsInterval)
}

// ReadMetrics is an optional extension of Metrics: when the Metrics in Config also implements
// it, the relay reports where the rows of each sweep came from and how many DELETEs settled
// them. It is a separate interface so that implementations of Metrics stay valid.
type ReadMetrics interface {
	OwnRead()                 // a partition read its own range for a sweep
	HandOff(rows int)         // a waiting partition took rows the watcher read for it (handoff.go)
	DeleteStatement(rows int) // one DELETE of published rows ran, for one or more partitions
	Watched(rows int)         // the watcher read rows looking for new ones (watcher.go)
}

// NopMetrics discards every measurement.
type NopMetrics struct{}

func (NopMetrics) Published(int)                  {}
func (NopMetrics) Returned(int)                   {}
func (NopMetrics) Nacked(int)                     {}
func (NopMetrics) Retried(int)                    {}
func (NopMetrics) Dead(int)                       {}
func (NopMetrics) BatchSize(int)                  {}
func (NopMetrics) PublishLatency(time.Duration)   {}
func (NopMetrics) ConfirmLatency(time.Duration)   {}
func (NopMetrics) Backlog(int64)                  {}
func (NopMetrics) OldestPendingAge(time.Duration) {}
func (NopMetrics) OwnRead()                       {}
func (NopMetrics) HandOff(int)                    {}
func (NopMetrics) Watched(int)                    {}
func (NopMetrics) DeleteStatement(int)            {}
