package outbox

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxShortString is the AMQP short-string limit, which bounds every name and property.
const maxShortString = 255

// maxHeaderName is the field-name limit of the AMQP 0-9-1 field table.
const maxHeaderName = 128

// validate checks one message against the limits of AMQP and of the outbox table and
// returns every problem it finds.
func (w *Writer) validate(index int, m *Message) []error {
	var errs []error
	fail := func(field string, err error, detail string) {
		errs = append(errs, &MessageError{Index: index, ID: m.ID, Field: field, Err: err, Detail: detail})
	}
	if m.Exchange == "" {
		fail("Exchange", ErrMissingExchange, "")
	}
	for _, f := range []struct{ name, value string }{
		{"ID", m.ID},
		{"Exchange", m.Exchange},
		{"RoutingKey", m.RoutingKey},
		{"PartitionKey", m.PartitionKey},
		{"Type", m.Type},
		{"AggregateType", m.AggregateType},
		{"ContentType", m.ContentType},
		{"CorrelationID", m.CorrelationID},
	} {
		if len(f.value) > maxShortString {
			fail(f.name, ErrFieldTooLong, fmt.Sprintf("%d bytes", len(f.value)))
		} else if !isPlainText(f.value) {
			fail(f.name, ErrInvalidText, fmt.Sprintf("%q", f.value))
		}
	}
	if len(m.Payload) > w.cfg.MaxPayloadBytes {
		fail("Payload", ErrPayloadTooLarge, fmt.Sprintf("%d bytes, maximum %d", len(m.Payload), w.cfg.MaxPayloadBytes))
	}
	size := 0
	for name, value := range m.Headers {
		size += len(name) + len(value)
		if reason := headerNameProblem(name); reason != "" {
			fail(headerField(name), ErrInvalidHeaderName, reason)
		}
		if !utf8.ValidString(value) {
			fail(headerField(name), ErrInvalidHeaderValue, "")
		}
	}
	if size > w.cfg.MaxHeaderBytes {
		fail("Headers", ErrHeadersTooLarge, fmt.Sprintf("%d bytes, maximum %d", size, w.cfg.MaxHeaderBytes))
	}
	return errs
}

func headerField(name string) string { return fmt.Sprintf("Headers[%q]", name) }

// headerNameProblem says why an AMQP field table cannot carry name, or "" when it can.
// Trace-context names are allowed: a caller may set them explicitly.
func headerNameProblem(name string) string {
	switch {
	case name == "":
		return "empty"
	case len(name) > maxHeaderName:
		return fmt.Sprintf("%d bytes, maximum %d", len(name), maxHeaderName)
	case !isPlainText(name):
		return "not UTF-8 text without control characters"
	case strings.HasPrefix(strings.ToLower(name), "x-"):
		return `names starting with "x-" are reserved for the broker`
	case strings.HasPrefix(strings.ToLower(name), "sw-"):
		return `names starting with "sw-" are reserved for syncworker`
	}
	return ""
}

// isPlainText reports whether s is valid UTF-8 without control characters.
func isPlainText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		} else if c >= utf8.RuneSelf {
			return validUTF8Text(s[i:])
		}
	}
	return true
}

func validUTF8Text(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
