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
func (w *Writer) validate(index int, m *Message, trace *headerTrace) []error {
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
	add := trace.adds(m.Headers)
	if size := validateHeaders(m.Headers, add, trace, fail); size > w.cfg.MaxHeaderBytes {
		detail := fmt.Sprintf("%d bytes as stored (JSON), maximum %d", size, w.cfg.MaxHeaderBytes)
		if add {
			detail = fmt.Sprintf("%d bytes as stored (JSON, with the trace context's %d), maximum %d",
				size, trace.size, w.cfg.MaxHeaderBytes)
		}
		fail("Headers", ErrHeadersTooLarge, detail)
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

// entrySize is the size of "name":"value" in JSON; both are valid UTF-8.
func entrySize(name, value string) int {
	n, _ := jsonStringLen(name)
	v, _ := jsonStringLen(value)
	return n + 1 + v
}

// validateHeaders checks the headers of one message, calling fail for each problem, and
// returns the size of the JSON object encodeHeaders stores for them (0 for NULL).
func validateHeaders(h map[string]string, add bool, t *headerTrace, fail func(field string, err error, detail string)) int {
	size, entries := 0, 0
	for name, value := range h {
		if reason := headerNameProblem(name); reason != "" {
			fail(headerField(name), ErrInvalidHeaderName, reason)
		}
		v, ok := jsonStringLen(value)
		if !ok {
			fail(headerField(name), ErrInvalidHeaderValue, "")
		}
		if t.replaces(add, name) {
			continue
		}
		n, _ := jsonStringLen(name) // an invalid name was reported above
		size += n + 1 + v + 1       // "name":"value",
		entries++
	}
	if add {
		size += t.size
		entries += t.entries
	}
	if entries == 0 {
		return 0
	}
	return size - 1 + 2 // no comma after the last entry; the braces
}

// jsonStringLen returns the length of s as a JSON string without HTML escaping, quotes
// included, and whether s is valid UTF-8.
func jsonStringLen(s string) (int, bool) {
	n := len(s) + 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
				n++ // \" \\ \b \f \n \r \t
			case c < 0x20:
				n += 5 // \u00XX
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return 0, false
		}
		if r == '\u2028' || r == '\u2029' {
			n += 3 // \u2028 for 3 bytes
		}
		i += size
	}
	return n, true
}

// idSet finds repeated IDs among the messages of one call. Generated IDs are unique, so
// only IDs the caller set are compared: a few by scanning, more through a map.
type idSet struct {
	seen map[string]int // ID -> index of its first message; made when the call is large
}

// idScanLimit is the call size up to which comparing with the earlier messages is cheaper
// than building a map.
const idScanLimit = 16

// add reports whether msgs[i] repeats the ID of an earlier message, and that message's index.
func (s *idSet) add(msgs []Message, i int) (int, bool) {
	id := msgs[i].ID
	if id == "" {
		return 0, false
	}
	if len(msgs) <= idScanLimit {
		for j := range i {
			if msgs[j].ID == id {
				return j, true
			}
		}
		return 0, false
	}
	if s.seen == nil {
		s.seen = make(map[string]int, len(msgs)-i)
	}
	if j, dup := s.seen[id]; dup {
		return j, true
	}
	s.seen[id] = i
	return 0, false
}
