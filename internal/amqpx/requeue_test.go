package amqpx

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestRequeueByNackFromRabbitMQ43(t *testing.T) {
	for version, want := range map[string]bool{
		"3.10.8": false, "3.13.7": false, "4.0.5": false, "4.2.1": false,
		"4.3.0": true, "4.3.6": true, "4.4.0-beta.1": true, "5.0.0": true, "": false, "x.y": false,
	} {
		if got := RequeueByNack(amqp.Table{"product": "RabbitMQ", "version": version}); got != want {
			t.Errorf("RabbitMQ %q: %v, want %v", version, got, want)
		}
	}
	if RequeueByNack(amqp.Table{"product": "LavinMQ", "version": "4.3.0"}) {
		t.Error("another broker's version taken for RabbitMQ's")
	}
}
