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
		PollInterval: 10 * time.Millisecond, IdlePollInterval: 5 * time.Millisecond,
		Order: Order(7), Tables: outbox.Tables{Outbox: "bad name"}})
	if err == nil {
		t.Fatal("New accepted a bad config")
	}
	for _, want := range []string{"DB is required", "AMQP.URL is required", "Partitions", "Window",
		"RenewInterval", "IdlePollInterval: 5ms is shorter than PollInterval 10ms", "Order", "Tables"} {
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

// IdlePollInterval defaults to 25ms, or to PollInterval when that was raised beyond it (the
// advice for idle CPU before the idle pace existed must keep working).
func TestIdlePollIntervalDefault(t *testing.T) {
	for _, c := range []struct{ poll, want time.Duration }{
		{0, 25 * time.Millisecond}, {2 * time.Millisecond, 25 * time.Millisecond}, {time.Second, time.Second},
	} {
		cfg := Config{PollInterval: c.poll}
		cfg.setDefaults()
		if cfg.IdlePollInterval != c.want {
			t.Errorf("PollInterval %s: IdlePollInterval %s, want %s", c.poll, cfg.IdlePollInterval, c.want)
		}
	}
}
