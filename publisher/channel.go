package publisher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/amqpx"
)

// outcome is what became of one publish.
type outcome int

const (
	outcomeUnsent      outcome = iota // never published (stopped before it)
	outcomeAcked                      // confirmed and not returned
	outcomeReturned                   // basic.return: unroutable
	outcomeNacked                     // basic.nack
	outcomeLost                       // its channel or connection closed before the confirm, by its fault
	outcomeInterrupted                // the same through no fault of its own (blame.go): published again
	outcomeFailed                     // failed before reaching the broker (for example no such exchange)
	outcomeHeld                       // held back behind a failed row of its key (strict order)
)

// result reports the outcome of the publish at index idx of a batch.
type result struct {
	idx     int
	outcome outcome
	reason  string
}

// errChannelClosed wraps the reason a publishing channel died.
var errChannelClosed = errors.New("channel closed")

// pending is an unconfirmed publish.
type pending struct {
	msgID    string
	exchange string
	sent     time.Time
	out      chan<- result // buffered for the whole batch: sends never block
	idx      int
}

// pubChannel is one AMQP channel in confirm mode. Publishes are pipelined: up to window of
// them wait for their confirms at once, and one goroutine per channel handles the stream of
// confirms and returns. A basic.return reaches the client before the ack of the same message,
// so the loop drains returns before it settles each confirm and correlates them by message id.
type pubChannel struct {
	ch      *amqp.Channel
	cork    *amqpx.CorkConn // the connection's socket, holding each publish back until the batch flushes
	sem     chan struct{}   // one slot per unconfirmed publish
	metrics Metrics

	pubMu sync.Mutex // makes "next sequence number + publish" atomic

	mu       sync.Mutex
	pending  map[uint64]pending
	inflight map[string]int    // message id -> unconfirmed publishes with it
	returned map[string]string // message id -> why the broker returned it
	dead     bool
	deadErr  error
	done     chan struct{} // closed when the channel is dead
}

// openPubChannel opens a confirm-mode channel on conn. onClose is called with the broker's
// close reason, if any, once the channel is dead.
func openPubChannel(conn *amqp.Connection, cork *amqpx.CorkConn, window int, metrics Metrics, onClose func(*amqp.Error)) (*pubChannel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("enable publisher confirms: %w", err)
	}
	pc := &pubChannel{
		ch:       ch,
		cork:     cork,
		sem:      make(chan struct{}, window),
		metrics:  metrics,
		pending:  make(map[uint64]pending, window),
		inflight: make(map[string]int, window),
		returned: map[string]string{},
		done:     make(chan struct{}),
	}
	// Buffers as large as the window keep the client's reader goroutine from ever waiting on us:
	// at most window publishes are unconfirmed, so at most window confirms and returns are
	// queued. That matters beyond speed: amqp091-go drops a notification its listener has not
	// taken within 5 s (rabbitmq/amqp091-go#349), and a dropped return would let the ack alone
	// settle an unroutable message as published.
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window))
	returns := ch.NotifyReturn(make(chan amqp.Return, window))
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	go pc.loop(confirms, returns, closes, onClose)
	return pc, nil
}

func (pc *pubChannel) loop(confirms <-chan amqp.Confirmation, returns <-chan amqp.Return, closes <-chan *amqp.Error, onClose func(*amqp.Error)) {
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			pc.noteReturn(r)
		case c, ok := <-confirms:
			if !ok {
				var reason *amqp.Error
				select {
				case reason = <-closes:
				case <-time.After(100 * time.Millisecond):
				}
				err := errChannelClosed
				if reason != nil {
					err = fmt.Errorf("%w: %v", errChannelClosed, reason)
				}
				pc.fail(err, blameFor(reason))
				if onClose != nil {
					onClose(reason)
				}
				return
			}
			// Any return for this message was handed to us before its confirm.
			for drained := false; !drained && returns != nil; {
				select {
				case r, ok := <-returns:
					if !ok {
						returns = nil
					} else {
						pc.noteReturn(r)
					}
				default:
					drained = true
				}
			}
			pc.resolve(c)
		}
	}
}

func (pc *pubChannel) noteReturn(r amqp.Return) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.inflight[r.MessageId] > 0 {
		pc.returned[r.MessageId] = fmt.Sprintf("returned by the broker: %d %s (exchange %q, routing key %q)",
			r.ReplyCode, r.ReplyText, r.Exchange, r.RoutingKey)
	}
}

func (pc *pubChannel) resolve(c amqp.Confirmation) {
	pc.mu.Lock()
	p, ok := pc.pending[c.DeliveryTag]
	if !ok {
		pc.mu.Unlock()
		return
	}
	delete(pc.pending, c.DeliveryTag)
	reason, returned := pc.returned[p.msgID]
	pc.forget(p.msgID)
	pc.mu.Unlock()
	<-pc.sem
	res := result{idx: p.idx, outcome: outcomeAcked}
	switch {
	case !c.Ack:
		res.outcome, res.reason = outcomeNacked, "nacked by the broker"
	case returned:
		res.outcome, res.reason = outcomeReturned, reason
	}
	pc.metrics.ConfirmLatency(time.Since(p.sent))
	p.out <- res
}

// forget drops one in-flight publish of msgID; the caller holds pc.mu.
func (pc *pubChannel) forget(msgID string) {
	if pc.inflight[msgID]--; pc.inflight[msgID] <= 0 {
		delete(pc.inflight, msgID)
		delete(pc.returned, msgID)
	}
}

// fail marks the channel dead and reports every unconfirmed publish as lost, or interrupted
// where blame says it was not its fault.
func (pc *pubChannel) fail(err error, blame blameFunc) {
	pc.mu.Lock()
	if pc.dead {
		pc.mu.Unlock()
		return
	}
	pc.dead, pc.deadErr = true, err
	close(pc.done)
	lost := pc.pending
	pc.pending = map[uint64]pending{}
	pc.inflight = map[string]int{}
	pc.returned = map[string]string{}
	pc.mu.Unlock()
	for _, p := range lost {
		<-pc.sem
		o := outcomeInterrupted
		if blame(p.exchange) {
			o = outcomeLost
		}
		p.out <- result{idx: p.idx, outcome: o, reason: err.Error()}
	}
}

// abort gives up on the channel: its unconfirmed publishes are reported lost (or interrupted)
// at once and the channel is closed in the background.
func (pc *pubChannel) abort(err error, blame blameFunc) {
	pc.fail(err, blame)
	go pc.ch.Close() //nolint:errcheck // the channel is being discarded
}

func (pc *pubChannel) isDead() bool {
	select {
	case <-pc.done:
		return true
	default:
		return false
	}
}

func (pc *pubChannel) err() error {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.deadErr
}

// publish sends msg (mandatory) and arranges for its outcome to be sent to out with idx. It
// waits for a window slot. A nil error means exactly one result will arrive on out; an error
// means none will.
func (pc *pubChannel) publish(ctx context.Context, exchange, key string, msg amqp.Publishing, out chan<- result, idx int) error {
	select {
	case pc.sem <- struct{}{}:
	default:
		pc.cork.Flush() // the confirms that free a slot answer publishes still held back
		select {
		case pc.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-pc.done:
			return pc.err()
		}
	}
	pc.pubMu.Lock()
	defer pc.pubMu.Unlock()
	// Returns are matched to publishes by message id, so two unconfirmed publishes with the
	// same id never share a channel (ids are unique unless a writer reused one on purpose).
	for {
		pc.mu.Lock()
		if pc.dead {
			err := pc.deadErr
			pc.mu.Unlock()
			<-pc.sem
			return err
		}
		if pc.inflight[msg.MessageId] == 0 {
			break
		}
		pc.mu.Unlock()
		pc.cork.Flush() // the confirm it waits for may answer a publish still held back
		select {
		case <-ctx.Done():
			<-pc.sem
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	seq := pc.ch.GetNextPublishSeqNo()
	pc.pending[seq] = pending{msgID: msg.MessageId, exchange: exchange, sent: time.Now(), out: out, idx: idx}
	pc.inflight[msg.MessageId]++
	pc.mu.Unlock()

	pc.cork.Hold()
	err := pc.ch.Publish(exchange, key, true, false, msg)
	pc.cork.Release()
	if err == nil {
		return nil
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if _, still := pc.pending[seq]; !still {
		return nil // the channel died meanwhile and fail already reported it lost
	}
	delete(pc.pending, seq)
	pc.forget(msg.MessageId)
	<-pc.sem
	return fmt.Errorf("publish: %w", err)
}
