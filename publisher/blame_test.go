package publisher

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestBlameFor(t *testing.T) {
	server := func(code int, reason string) *amqp.Error {
		return &amqp.Error{Code: code, Reason: reason, Server: true}
	}
	for _, tc := range []struct {
		name   string
		reason *amqp.Error
		blamed []string // exchanges whose publishes count the failure
		spared []string
	}{
		{"closed without a reason", nil, nil, []string{"x", ""}},
		{"network failure seen by the client", &amqp.Error{Code: amqp.FrameError, Reason: "EOF"}, nil, []string{"x"}},
		{"broker shutdown or forced close", server(amqp.ConnectionForced, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"), nil, []string{"x"}},
		{"internal exchange", server(amqp.AccessRefused, "ACCESS_REFUSED - cannot publish to internal exchange 'orders.internal' in vhost '/'"), []string{"orders.internal"}, []string{"orders", ""}},
		{"no write permission", server(amqp.AccessRefused, "ACCESS_REFUSED - write access to exchange 'it's' in vhost 'prod' refused for user 'relay'"), []string{"it's"}, []string{"orders"}},
		{"default exchange", server(amqp.AccessRefused, "ACCESS_REFUSED - write access to exchange 'amq.default' in vhost '/' refused for user 'relay'"), []string{""}, []string{"amq.default", "x"}},
		{"deleted exchange", server(amqp.NotFound, "NOT_FOUND - no exchange 'gone' in vhost '/'"), []string{"gone"}, []string{"x"}},
		{"other refusal", server(amqp.PreconditionFailed, "PRECONDITION_FAILED - message size 20000000 is larger than configured max size 16777216"), []string{"x", ""}, nil},
	} {
		blame := blameFor(tc.reason)
		for _, x := range tc.blamed {
			if !blame(x) {
				t.Errorf("%s: a publish to %q is not blamed", tc.name, x)
			}
		}
		for _, x := range tc.spared {
			if blame(x) {
				t.Errorf("%s: a publish to %q is blamed", tc.name, x)
			}
		}
	}
}
