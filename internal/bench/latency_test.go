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

func TestOrdinal(t *testing.T) {
	for n, want := range map[int]string{2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th", 21: "21st", 22: "22nd", 101: "101st", 111: "111th"} {
		if got := ordinal(n); got != want {
			t.Errorf("ordinal(%d) = %q, want %q", n, got, want)
		}
	}
}
