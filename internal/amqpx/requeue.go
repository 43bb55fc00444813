package amqpx

import (
	"strconv"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// RequeueByNack reports whether unacked messages are best handed back to a quorum queue with
// basic.nack and requeue rather than by closing their channel, given the server properties of
// the connection (amqp.Connection.Properties). It is true for RabbitMQ 4.3 and newer, where a
// nack with requeue does not count against the queue's delivery limit (RabbitMQ 4 gives every
// quorum queue one, 20 by default) and leaves the message in its place, while a channel or
// connection closing counts every message it hands back. RabbitMQ 3.x counts both and puts a
// nacked message at the back of the queue (measured on 3.10.8), so there closing is better;
// 4.0 to 4.2 are not measured here and keep to closing.
func RequeueByNack(server amqp.Table) bool {
	if product, _ := server["product"].(string); product != "RabbitMQ" {
		return false
	}
	version, _ := server["version"].(string)
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return major > 4 || (major == 4 && minor >= 3)
}
