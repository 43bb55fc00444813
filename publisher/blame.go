package publisher

import (
	"regexp"

	amqp "github.com/rabbitmq/amqp091-go"
)

// When a channel dies, its unconfirmed publishes of every partition sharing it die with it.
// Only the rows that caused it count a failed attempt (and back off, and die after
// MaxAttempts); the others are published again at once, as after a broker restart. Counting
// them all let one row to an exchange that refuses publishes (internal, or without write
// permission, which a passive declare cannot tell) push unrelated rows into the dead table.

// blameFunc says whether a dead channel's unconfirmed publish to exchange failed through its
// own fault.
type blameFunc func(exchange string) bool

func blameAll(string) bool  { return true }
func blameNone(string) bool { return false }

// blameFor reads the reason the channel or its connection was closed with.
func blameFor(reason *amqp.Error) blameFunc {
	if reason == nil || !reason.Server || reason.Code == amqp.ConnectionForced {
		return blameNone // the network, this client, a broker shutdown or an operator closed it
	}
	if name, ok := exchangeNamed(reason); ok {
		return func(exchange string) bool { return exchange == name }
	}
	return blameAll // a publish the broker refused for a reason that names no exchange
}

// exchangeInReason finds the exchange in RabbitMQ's channel exceptions for a publish:
// "NOT_FOUND - no exchange 'x' in vhost '/'", "ACCESS_REFUSED - cannot publish to internal
// exchange 'x' in vhost '/'", "ACCESS_REFUSED - write access to exchange 'x' in vhost '/'
// refused for user 'u'".
var exchangeInReason = regexp.MustCompile(`exchange '(.*)' in vhost '`)

// exchangeNamed returns the exchange a 403 or 404 channel exception names ("" for the
// default exchange).
func exchangeNamed(reason *amqp.Error) (string, bool) {
	if reason.Code != amqp.AccessRefused && reason.Code != amqp.NotFound {
		return "", false
	}
	m := exchangeInReason.FindStringSubmatch(reason.Reason)
	if m == nil {
		return "", false
	}
	if m[1] == "amq.default" {
		return "", true
	}
	return m[1], true
}
