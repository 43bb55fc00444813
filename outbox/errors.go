package outbox

import (
	"errors"
	"fmt"
)

// Sentinel errors for invalid messages. Write wraps each in a *MessageError that names the
// message and field; test with errors.Is, or errors.As for the details.
var (
	ErrMissingExchange    = errors.New("exchange is required (use outbox.DefaultExchange for the default exchange)")
	ErrFieldTooLong       = errors.New("value is longer than 255 bytes")
	ErrInvalidText        = errors.New("value must be valid UTF-8 without control characters")
	ErrPayloadTooLarge    = errors.New("payload is larger than the configured maximum")
	ErrInvalidHeaderName  = errors.New("header name cannot be carried by AMQP or is reserved")
	ErrInvalidHeaderValue = errors.New("header value must be valid UTF-8")
	ErrHeadersTooLarge    = errors.New("headers are larger than the configured maximum")
	// ErrDuplicateID: two messages of one Write call have the same ID, so subscribers would
	// drop the second as a redelivery of the first.
	ErrDuplicateID = errors.New("another message of the same Write call has this ID")
)

// MessageError says which message (its index in the Write call) and which field was invalid.
type MessageError struct {
	Index int    // position of the message in the Write call
	ID    string // the message's ID when the caller set one
	Field string // for example "RoutingKey" or `Headers["x-foo"]`
	Err   error  // one of the sentinel errors above
	// Detail adds the offending size or value where that helps.
	Detail string
}

func (e *MessageError) Error() string {
	s := fmt.Sprintf("outbox: message %d", e.Index)
	if e.ID != "" {
		s += fmt.Sprintf(" (id %q)", e.ID)
	}
	s += fmt.Sprintf(": %s: %v", e.Field, e.Err)
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

func (e *MessageError) Unwrap() error { return e.Err }
