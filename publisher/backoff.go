package publisher

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// retryDelay returns the wait before attempt number attempts+1 of a row that failed attempts
// times: RetryInitial doubling up to RetryMax, with ±50% jitter so rows that failed together
// do not all come back at once.
func (r *Relay) retryDelay(attempts int) time.Duration {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     r.cfg.RetryInitial,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         r.cfg.RetryMax,
		MaxElapsedTime:      0,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	d := b.NextBackOff()
	for i := 1; i < attempts && i < 64; i++ {
		d = b.NextBackOff()
	}
	return d
}
