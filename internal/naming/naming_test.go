package naming

import (
	"testing"
	"time"
)

func TestNames(t *testing.T) {
	for d, want := range map[time.Duration]string{
		500 * time.Millisecond:  "q.retry.500ms",
		time.Second:             "q.retry.1s",
		10 * time.Second:        "q.retry.10s",
		time.Minute:             "q.retry.1m",
		90 * time.Second:        "q.retry.1m30s",
		2 * time.Hour:           "q.retry.2h",
		time.Hour + time.Minute: "q.retry.1h1m",
	} {
		if got := RetryQueue("q", d); got != want {
			t.Errorf("RetryQueue(q, %s) = %q, want %q", d, got, want)
		}
	}
	if got := ParkingLot("orders"); got != "orders.parked" {
		t.Errorf("ParkingLot = %q", got)
	}
}
