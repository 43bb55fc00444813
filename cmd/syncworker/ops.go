package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/syncworker/syncworker/internal/amqpx"
)

// runWithOps runs work and, when http.listen is set, the ops server beside it; when work
// returns the server stops too. A server that cannot listen stops work.
func runWithOps(ctx context.Context, s *settings, reg *prometheus.Registry, ready *readiness, log *zap.Logger, work func(context.Context) error) error {
	if s.HTTP.Listen == "" {
		return work(ctx)
	}
	serveCtx, stopServe := context.WithCancel(ctx)
	defer stopServe()
	g, gctx := errgroup.WithContext(serveCtx)
	g.Go(func() error {
		defer stopServe()
		return work(gctx)
	})
	g.Go(func() error {
		err := serveOps(serveCtx, s.HTTP.Listen, reg, ready, log)
		if err != nil {
			return errors.Join(errors.New("http.listen "+s.HTTP.Listen), err)
		}
		return nil
	})
	return g.Wait()
}

// brokerProbe keeps a connection of its own to answer "is the broker reachable" for /readyz:
// each check opens and closes a channel on it, dialling again (at most once per check) after
// it is lost.
type brokerProbe struct {
	s    *settings
	name string
	mu   sync.Mutex
	conn *amqp.Connection
}

func newBrokerProbe(s *settings, name string) *brokerProbe { return &brokerProbe{s: s, name: name} }

func (p *brokerProbe) check(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil && !p.conn.IsClosed() {
		// A round trip, so that a broker that stopped answering (a network partition, a hung
		// node) fails the check now rather than once heartbeats give up on the connection: a
		// channel open that gets no answer outlasts the readiness deadline.
		ch, err := p.conn.Channel()
		if err == nil {
			ch.Close()
			return nil
		}
		p.conn.Close()
	}
	dc, err := dialConfig(p.s, p.name)
	if err != nil {
		return err
	}
	dc.Timeout = 2 * time.Second // within the readiness check's deadline
	conn, err := amqpx.Dial(dc)
	if err != nil {
		return redactErr(err, p.s)
	}
	p.conn = conn
	return nil
}

func (p *brokerProbe) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		p.conn.Close()
	}
}
