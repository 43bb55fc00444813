// Package naming holds the broker naming conventions that topology declares and the
// subscriber relies on, so the two can never disagree.
//
// For a consumer queue Q with retries:
//
//	Q.retry.<delay>   a delay tier: holds a failed message for <delay>, then dead-letters it
//	                  back to Q through the default exchange (for example Q.retry.10s)
//	Q.parked          the parking lot: messages that ran out of attempts or cannot be processed
//
// Both are reached through the default exchange with their queue name as routing key.
package naming

import (
	"strings"
	"time"
)

// RetryQueue names the delay tier of queue for delay, for example "orders.retry.10s".
func RetryQueue(queue string, delay time.Duration) string {
	return queue + ".retry." + FormatDelay(delay)
}

// ParkingLot names the parking-lot queue of queue, for example "orders.parked".
func ParkingLot(queue string) string { return queue + ".parked" }

// FormatDelay writes d compactly: 500ms, 1s, 10s, 1m, 1m30s, 2h.
func FormatDelay(d time.Duration) string {
	s := d.String()
	if d%time.Second != 0 {
		return s
	}
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
