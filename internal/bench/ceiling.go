package bench

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/errgroup"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/outbox"
)

// Ceiling measures broker-only confirmed publishing: persistent messages shaped as the relay's
// (same payload size, properties and partition-key header, mandatory), over the same number of
// channels with the same confirm window as the relay, into a durable queue a consumer drains.
// It is the physical limit the relay is held against.
func Ceiling(ctx context.Context, o Options) (Result, error) {
	s, err := newSink(ctx, o.AMQPURL, "ceiling."+uniqueSuffix(), o.Messages)
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	// Publishes are held back and written together, as the relay writes a batch's, so that
	// the ceiling stays the broker's limit rather than that of one system call per message.
	var cork *amqpx.CorkConn
	conn, err := amqpx.Dial(amqpx.DialConfig{URL: o.AMQPURL, Name: "syncworker-bench-ceiling",
		WrapConn: func(c net.Conn) net.Conn { cork = amqpx.NewCorkConn(c); return cork }})
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	payload := make([]byte, o.PayloadSize)
	cpu := startCPUUse()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	per := (o.Messages + o.Channels - 1) / o.Channels
	for c := 0; c < o.Channels; c++ {
		from, to := c*per, min((c+1)*per, o.Messages)
		g.Go(func() error { return publishConfirmed(gctx, conn, cork, s, payload, from, to, o.Window) })
	}
	if err := g.Wait(); err != nil {
		return Result{}, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.Wait(waitCtx); err != nil {
		return Result{}, err
	}
	elapsed := time.Since(start)
	return Result{Scenario: "ceiling", Messages: o.Messages, Seconds: elapsed.Seconds(), MsgsPerS: rate(o.Messages, elapsed),
		Note: fmt.Sprintf("%d channels, window %d; %s", o.Channels, o.Window, cpu.summary())}, nil
}

// publishConfirmed publishes ids from..to-1 on one channel keeping at most window confirms
// outstanding, and fails on any nack. Its publishes are held back in cork until it waits for
// confirms.
func publishConfirmed(ctx context.Context, conn *amqp.Connection, cork *amqpx.CorkConn, s *sink, payload []byte, from, to, window int) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window))
	outstanding := 0
	await := func() error {
		select {
		case c, ok := <-confirms:
			if !ok {
				return fmt.Errorf("channel closed with %d confirms outstanding", outstanding)
			}
			if !c.Ack {
				return fmt.Errorf("broker nacked delivery %d", c.DeliveryTag)
			}
			outstanding--
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i := from; i < to; i++ {
		if outstanding >= window {
			cork.Flush()
			if err := await(); err != nil {
				return err
			}
			for len(confirms) > 0 && outstanding > 0 { // the rest that already came
				if err := await(); err != nil {
					return err
				}
			}
		}
		// Shaped as the relay publishes a pre-filled row (properties, partition-key header,
		// mandatory), so the ceiling is the broker's limit for the same messages.
		cork.Hold()
		err := ch.PublishWithContext(ctx, s.Exchange, s.RoutingKey, true, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, MessageId: strconv.Itoa(i), Type: "bench",
			ContentType: outbox.DefaultContentType, AppId: "syncworker", Timestamp: time.Now(),
			Headers: amqp.Table{outbox.HeaderPartitionKey: "k" + strconv.Itoa(i%1000)}, Body: payload,
		})
		cork.Release()
		if err != nil {
			return err
		}
		outstanding++
	}
	cork.Flush()
	for outstanding > 0 {
		if err := await(); err != nil {
			return err
		}
	}
	return nil
}
