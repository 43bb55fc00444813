package outbox

import (
	"testing"
	"time"
)

func TestParseUnixTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1700000000.123456":      time.Unix(1700000000, 123456000),
		"1700000000":             time.Unix(1700000000, 0),
		"1700000000.5":           time.Unix(1700000000, 500000000),
		"0.000001":               time.Unix(0, 1000),
		"1700000000.12345678912": time.Unix(1700000000, 123456789),
		"":                       {},
		".5":                     {},
		"-1.0":                   {},
		"12a4.5":                 {},
		"9999999999999999999":    {}, // too long for seconds
	} {
		if got := parseUnixTime(in); !got.Equal(want) {
			t.Errorf("parseUnixTime(%q) = %v, want %v", in, got, want)
		}
		if got := parseUnixTime([]byte(in)); !got.Equal(want) {
			t.Errorf("parseUnixTime([]byte(%q)) = %v, want %v", in, got, want)
		}
	}
}
