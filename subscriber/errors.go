// Package subscriber applies RabbitMQ messages to the subscriber's own MySQL database exactly
// once: each delivery is recorded in an inbox table in the same transaction as the handler's
// effect, and acked only after that transaction committed (or after the message was moved to a
// retry tier or the parking lot with a confirmed publish). See README.md for the protocol.
package subscriber

import "errors"

// ErrPermanent marks a handler error that retrying cannot fix: wrap it
// (fmt.Errorf("...: %w", subscriber.ErrPermanent)) and the message goes straight to the
// parking lot instead of the retry tiers.
var ErrPermanent = errors.New("permanent failure")

// ErrUndecodable is the reason given when a delivery cannot be turned into a Message (for
// example it has no message id). Such deliveries are parked at once.
var ErrUndecodable = errors.New("undecodable delivery")

// ErrHandlerPanic wraps the value of a recovered handler panic; it is retried like any error.
var ErrHandlerPanic = errors.New("handler panicked")

// ErrMoveFailed is returned when a failed message could not be moved to its retry tier or
// parking lot (the queue is missing, or the broker did not confirm). The original is not
// acked; the session reconnects and the message is delivered again.
var ErrMoveFailed = errors.New("moving a failed message did not get confirmed")
