package amqpx

import (
	"strings"
	"testing"
)

// A URL that does not parse is reported without the password, or any part of it.
func TestDialBadURLHidesPassword(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"amqp://u:pw-secret@127.0.0.1:99999x/": "invalid port",
		"amqp://u:pw-secret%zz@127.0.0.1:1/":   "does not parse",
		"amqp://u:pw-secret@host:1/%":          "does not parse",
	} {
		_, err := Dial(DialConfig{URL: raw})
		if err == nil {
			t.Fatalf("%s: no error", raw)
		}
		if msg := err.Error(); strings.Contains(msg, "secret") || strings.Contains(msg, "%zz") || !strings.Contains(msg, want) {
			t.Errorf("error %q: want it to say %q without the password", msg, want)
		}
	}
}
