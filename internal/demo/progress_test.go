package demo

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The first progress line shows the rates since the start, not 0/s for want of an earlier sample.
func TestFirstProgressLineShowsRatesSinceStart(t *testing.T) {
	var out bytes.Buffer
	start := time.Now()
	m := &monitor{cfg: Config{Progress: &out}, prod: &producer{}, want: 1000, start: start,
		produced: 500, replica: 100, projection: 100, at: start.Add(2 * time.Second)}
	m.render(true)
	line := out.String()
	if !strings.Contains(line, "produced 500/2000 (250/s)") || !strings.Contains(line, "projection 100 (100/s)") {
		t.Fatalf("first line = %q; want the rates since the start: 250/s produced, 100/s applied", line)
	}
}
