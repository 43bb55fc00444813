package publisher

import (
	"strings"
	"testing"
	"time"

	"github.com/syncworker/syncworker/outbox"
)

// New reports every configuration problem at once.
func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(Config{Partitions: -1, Window: -5, LeaseTTL: time.Second, RenewInterval: time.Second,
		Order: Order(7), Tables: outbox.Tables{Outbox: "bad name"}})
	if err == nil {
		t.Fatal("New accepted a bad config")
	}
	for _, want := range []string{"DB is required", "AMQP.URL is required", "Partitions", "Window",
		"RenewInterval", "Order", "Tables"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if o, err := ParseOrder("relaxed"); err != nil || o != OrderRelaxed {
		t.Errorf("ParseOrder(relaxed) = %v, %v", o, err)
	}
	if _, err := ParseOrder("sloppy"); err == nil {
		t.Error("ParseOrder accepted sloppy")
	}
}
