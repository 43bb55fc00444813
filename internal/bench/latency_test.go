package bench

import (
	"strings"
	"testing"
)

func TestRateShortfallFlagsARateTheWritersMissed(t *testing.T) {
	if s := rateShortfall(1000, 990); s != "" {
		t.Errorf("990 of 1000 msgs/s: %q, want no flag (within 5%%)", s)
	}
	s := rateShortfall(1000, 640.4)
	if !strings.Contains(s, "only 640 of the 1000") {
		t.Errorf("640 of 1000 msgs/s: %q, want it to give both rates", s)
	}
}
