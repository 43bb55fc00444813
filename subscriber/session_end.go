package subscriber

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/syncworker/syncworker/internal/amqpx"
)

// How a session ends with the broker: the consumer is cancelled after the last acks, and what
// no handler started on is handed back.

// handBack returns to the queue, with basic.nack and requeue, the deliveries of a session that
// no handler started on: those queued in the lanes and those still on their way from the broker
// when the consumer was cancelled (deliveries closes after the cancel-ok). Handing them back by
// closing the connection counts as a failed delivery for each of them on RabbitMQ 4.3, against
// the queue's delivery limit (20 by default), so a consumer restarted that often while they
// waited would have the broker dead-letter healthy messages into the parking lot; a nack with
// requeue does not count there. Only for brokers where amqpx.RequeueByNack holds: 3.x counts a
// nack too and moves the message to the back of the queue. What a handler did start on is left
// to the connection's close, so a message that hangs or crashes every consumer still reaches
// the limit. If a nack is lost, the close hands the message back all the same.
//
// Deliveries of a key in cutShort (a batch of that key was cut short by the stop timeout) are
// left to the close as well: the broker queues what is handed back in the order it comes back,
// so nacking them would put them ahead of the cut-short delivery of their key, which the close
// returns later (measured on 4.3.6: a key's a1..a4 were applied before a0).
//
// onlyUntouched says that no batch of the session failed a move: with nothing cut short
// either, every delivery still unacked on ch is one no handler started on, and one basic.nack
// with delivery tag 0 and multiple returns them all. A nack per delivery is a command each for
// a quorum queue, which drops those still pending when the channel closes, as it does acks
// (rabbitmq-server#10327): measured on 4.3.6 under load, 400 single nacks and a close counted
// messages as failed deliveries in 9 of 10 runs (230 of 400 on average), one multiple nack in
// none of 10.
func (s *Subscriber) handBack(ch *amqp.Channel, cork *amqpx.CorkConn, untouched []amqp.Delivery, deliveries <-chan amqp.Delivery,
	cutShort map[string]struct{}, onlyUntouched bool) {
	for d := range deliveries {
		untouched = append(untouched, d)
	}
	if len(untouched) == 0 {
		return
	}
	if onlyUntouched && len(cutShort) == 0 {
		if err := ch.Nack(0, true, true); err != nil {
			s.log.Debug("hand back unstarted deliveries", zap.Int("deliveries", len(untouched)), zap.Error(err))
			return
		}
		s.testHandedBack.Add(int64(len(untouched)))
		return
	}
	back := untouched[:0]
	for _, d := range untouched {
		if _, ok := cutShort[orderKey(&d)]; !ok {
			back = append(back, d)
		}
	}
	if len(back) == 0 {
		return
	}
	var failed error
	cork.Batch(func() {
		for i := range back {
			if err := ch.Nack(back[i].DeliveryTag, false, true); err != nil {
				failed = err
				return
			}
			s.testHandedBack.Add(1)
		}
	})
	if failed != nil {
		s.log.Debug("hand back unstarted deliveries", zap.Int("deliveries", len(back)), zap.Error(failed))
	}
}

// cancelAfterAcksTimeout bounds the wait for the broker's cancel-ok at the end of a session.
const cancelAfterAcksTimeout = 5 * time.Second

// cancelAfterAcks cancels the consumer after the session's last acks and waits for the broker
// to confirm before the connection closes. A quorum queue can drop acks that arrive just
// before their channel closes, handing the messages out again (rabbitmq-server#10327): 13 of
// 15 stops of a consumer acking 400 messages lost some on RabbitMQ 3.10 under load, none with
// a confirmed cancel after the acks. The inbox skips such redeliveries of applied messages, but
// a moved one (retry tier, parking lot) would be moved again: a duplicate. A cancel sent before
// the last acks does not help, so the consumer stays until here. On a
// stalled connection the wait ends after cancelAfterAcksTimeout; closing the connection ends
// the call.
// It reports whether the broker confirmed the cancel, and whether the wait timed out: the
// broker is not answering, so the session closes the connection without awaiting a close-ok
// (which would hold Run until the heartbeat timeout, some 10 s more).
func cancelAfterAcks(ch *amqp.Channel, tag string, log *zap.Logger) (confirmed, timedOut bool) {
	done := make(chan error, 1)
	go func() { done <- ch.Cancel(tag, false) }()
	select {
	case err := <-done:
		if err != nil {
			log.Debug("cancel the consumer after the last acks", zap.Error(err))
		}
		return err == nil, false
	case <-time.After(cancelAfterAcksTimeout):
		log.Warn("the broker did not confirm the consumer's cancel; closing the connection",
			zap.Duration("waited", cancelAfterAcksTimeout))
		return false, true
	}
}
