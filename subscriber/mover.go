package subscriber

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
)

// move is one failed delivery on its way to a retry tier or the parking lot.
type move struct {
	queue string // the tier or parking-lot queue, reached through the default exchange
	pub   amqp.Publishing
}

// mover publishes moves on a confirm-mode channel with mandatory set. One batch of moves is in
// flight at a time, so a basic.return (which the broker sends before the confirm of the same
// message, and amqp091 hands over in that order) belongs to the batch being waited for.
type mover struct {
	mu      sync.Mutex
	ch      *amqp.Channel
	returns chan amqp.Return
}

func newMover(ch *amqp.Channel, maxBatch int) (*mover, error) {
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("put the publishing channel in confirm mode: %w", err)
	}
	// The buffer holds every return one batch can cause, so the connection's reader never
	// blocks on it.
	returns := ch.NotifyReturn(make(chan amqp.Return, maxBatch+8))
	return &mover{ch: ch, returns: returns}, nil
}

// publish sends moves and reports which of them the broker confirmed and did not return as
// unroutable (moved[i]); the error says why the others were not moved. A return names its
// message by queue and message id: every move of that pair counts as returned.
func (m *mover) publish(ctx context.Context, moves []move) (moved []bool, err error) {
	moved = make([]bool, len(moves))
	if len(moves) == 0 {
		return moved, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	confirms := make([]*amqp.DeferredConfirmation, 0, len(moves))
	var errs []error
	for _, mv := range moves {
		dc, err := m.ch.PublishWithDeferredConfirmWithContext(ctx, "", mv.queue, true, false, mv.pub)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: publish to %s: %v", ErrMoveFailed, mv.queue, err))
			break
		}
		confirms = append(confirms, dc)
	}
	for i, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: wait for confirm from %s: %v", ErrMoveFailed, moves[i].queue, err))
			break
		}
		if !ok {
			errs = append(errs, fmt.Errorf("%w: broker nacked the publish to %s", ErrMoveFailed, moves[i].queue))
			continue
		}
		moved[i] = true
	}
	for {
		select {
		case r := <-m.returns:
			errs = append(errs, fmt.Errorf("%w: queue %q returned the message (%d %s): is its topology declared?",
				ErrMoveFailed, r.RoutingKey, r.ReplyCode, r.ReplyText))
			for i, mv := range moves {
				if mv.queue == r.RoutingKey && mv.pub.MessageId == r.MessageId {
					moved[i] = false
				}
			}
		default:
			return moved, errors.Join(errs...)
		}
	}
}

// moveFor builds the move of d after a failure: to the parking lot when the failure is
// permanent or attempts ran out, else to the retry tier for its attempt count.
func (s *Subscriber) moveFor(d *amqp.Delivery, failure error, now time.Time) (mv move, parked bool, attempts int) {
	attempts = failedAttempts(d.Headers) + 1
	parked = errors.Is(failure, ErrPermanent) || errors.Is(failure, ErrUndecodable) || attempts >= s.cfg.MaxAttempts
	queue := s.parkingLot
	if !parked {
		queue = s.retryQueues[min(attempts-1, len(s.retryQueues)-1)]
	}
	headers := amqp.Table{}
	for k, v := range d.Headers {
		headers[k] = v
	}
	// The broker's counts of this copy's deliveries: the moved message is a new copy, which the
	// broker counts afresh, but RabbitMQ 4 would deliver a published count unchanged the first time.
	delete(headers, "x-delivery-count")
	delete(headers, "x-acquired-count")
	headers[HeaderAttempts] = int64(attempts)
	headers[HeaderError] = truncateUTF8(failure.Error(), MaxErrorBytes)
	headers[HeaderFailedAt] = now.UTC().Format(time.RFC3339Nano)
	headers[HeaderConsumer] = s.cfg.ConsumerName
	if _, ok := headers[HeaderOriginalExchange]; !ok {
		headers[HeaderOriginalExchange] = d.Exchange
		headers[HeaderOriginalRoutingKey] = d.RoutingKey
	}
	// Kept: every property but expiration (a parked message must not vanish, and a tier's own
	// TTL is the delay) and user-id (the broker checks it against this connection's user);
	// moved messages are persistent.
	return move{queue: queue, pub: amqp.Publishing{
		Headers:         headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}}, parked, attempts
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
