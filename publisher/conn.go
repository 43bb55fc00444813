package publisher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/syncworker/syncworker/internal/amqpx"
)

// connManager keeps one broker connection up: it redials with backoff after a loss, opens
// the publishing channels lazily, tracks connection.blocked (flow control) and which
// exchanges are known to exist.
type connManager struct {
	dial    amqpx.DialConfig
	window  int
	metrics Metrics
	log     *zap.Logger

	mu    sync.Mutex
	conn  *amqp.Connection
	cork  *amqpx.CorkConn // conn's socket
	up    chan struct{}   // closed while conn is usable; replaced after a loss
	chans []*pubChannel

	// Apart from mu, which is held while a channel opens: a publisher looks here between
	// publishes it holds back (see amqpx.CorkConn), so this lock never waits on the broker.
	knownMu   sync.Mutex
	knownConn *amqp.Connection   // the connection known and refused are about
	known     map[string]bool    // exchanges seen to exist on knownConn
	refused   map[string]refusal // exchanges that refused a publish on knownConn

	blocked atomic.Bool
}

func newConnManager(dial amqpx.DialConfig, channels, window int, metrics Metrics, log *zap.Logger) *connManager {
	return &connManager{
		dial: dial, window: window, metrics: metrics, log: log,
		up: make(chan struct{}), chans: make([]*pubChannel, channels),
	}
}

// run dials, waits for the connection to die, and dials again, until ctx ends; then it closes
// the connection.
func (m *connManager) run(ctx context.Context) {
	pause := time.Duration(0) // grows while connections die right after they open
	for {
		if pause > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
		}
		conn, cork, err := amqpx.DialRetryCorked(ctx, m.dial, m.log)
		if err != nil {
			return // ctx ended
		}
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		blocking := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
		m.setKnown(conn) // before publishers see the connection
		m.mu.Lock()
		m.conn, m.cork = conn, cork
		close(m.up)
		m.mu.Unlock()
		m.log.Info("connected to the broker")

		opened := time.Now()
		lost, reason := m.watch(ctx, closed, blocking)
		if time.Since(opened) < 5*time.Second {
			pause = min(max(2*pause, 100*time.Millisecond), 10*time.Second)
		} else {
			pause = 0
		}

		m.mu.Lock()
		m.conn = nil
		m.up = make(chan struct{})
		for i, pc := range m.chans {
			if pc != nil {
				pc.fail(fmt.Errorf("%w: connection lost", errChannelClosed), blameFor(reason))
				m.chans[i] = nil
			}
		}
		m.mu.Unlock()
		m.setKnown(nil)
		m.blocked.Store(false)
		if !lost {
			// A deadline, because a broker that stopped reading would block a plain Close.
			conn.CloseDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // closing anyway
			return
		}
	}
}

// watch follows the connection's notifications; it returns true and the reason, if any, when
// the connection was lost, and false when ctx ended.
func (m *connManager) watch(ctx context.Context, closed <-chan *amqp.Error, blocking <-chan amqp.Blocking) (bool, *amqp.Error) {
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case b, ok := <-blocking:
			if ok {
				m.blocked.Store(b.Active)
				if b.Active {
					m.log.Warn("broker blocked publishing (flow control); pausing", zap.String("reason", b.Reason))
				} else {
					m.log.Info("broker unblocked publishing")
				}
			} else {
				blocking = nil
			}
		case err := <-closed:
			m.log.Warn("broker connection lost; reconnecting", zap.Error(err))
			return true, err
		}
	}
}

// channel returns publishing channel i, waiting for the connection and reopening the channel
// if it died.
func (m *connManager) channel(ctx context.Context, i int) (*pubChannel, error) {
	wait := 50 * time.Millisecond
	for {
		m.mu.Lock()
		if m.conn != nil && !m.conn.IsClosed() {
			if pc := m.chans[i]; pc != nil && !pc.isDead() {
				m.mu.Unlock()
				return pc, nil
			}
			pc, err := openPubChannel(m.conn, m.cork, m.window, m.metrics, m.channelClosed)
			if err == nil {
				m.chans[i] = pc
				m.mu.Unlock()
				return pc, nil
			}
			m.mu.Unlock()
			m.log.Warn("cannot open a publishing channel; retrying", zap.Error(err), zap.Duration("retry_in", wait))
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
			wait = min(2*wait, 5*time.Second)
			continue
		}
		up := m.up
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-up:
		}
	}
}

// refusedFor is how long rows to an exchange that refused a publish (internal, or no write
// permission) fail without being published, so that each such row does not close the channel
// under everyone else's publishes again; after it, one is published to see whether the exchange
// (or the relay's permissions) changed.
const refusedFor = 30 * time.Second

// refusal is why and until when an exchange's rows fail without being published.
type refusal struct {
	until  time.Time
	reason string
}

// channelClosed learns from the reason the broker closed a publishing channel with: 404, a
// known exchange was deleted (forget the known ones); 403 naming an exchange, publishes to it
// are refused (see refusedFor).
func (m *connManager) channelClosed(reason *amqp.Error) {
	if reason == nil || !reason.Server {
		return
	}
	m.knownMu.Lock()
	defer m.knownMu.Unlock()
	switch name, named := exchangeNamed(reason); {
	case reason.Code == amqp.NotFound:
		m.known = map[string]bool{}
	case reason.Code == amqp.AccessRefused && named:
		m.refused[name] = refusal{until: time.Now().Add(refusedFor), reason: reason.Error()}
	}
}

// setKnown starts empty sets of known and refused exchanges for conn.
func (m *connManager) setKnown(conn *amqp.Connection) {
	m.knownMu.Lock()
	m.knownConn, m.known, m.refused = conn, map[string]bool{}, map[string]refusal{}
	m.knownMu.Unlock()
}

// BrokerBlocked reports whether the broker applies flow control to the relay's connection
// (connection.blocked, during a memory or disk alarm): the relay publishes nothing until the
// broker lifts it.
func (r *Relay) BrokerBlocked() bool { return r.conns.blocked.Load() }

// waitUnblocked returns once the broker no longer applies flow control to the connection. It
// flushes what cork holds back before it waits.
func (m *connManager) waitUnblocked(ctx context.Context, cork *amqpx.CorkConn) error {
	if m.blocked.Load() {
		cork.Flush()
	}
	for m.blocked.Load() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// errNoExchange says a row names an exchange the broker does not have; errExchangeRefused, one
// that refused a publish a moment ago (see refusedFor). Either fails the row, unpublished.
var (
	errNoExchange      = errors.New("exchange does not exist")
	errExchangeRefused = errors.New("exchange refused a publish")
)

// checkExchange returns errNoExchange when the broker has no exchange called name, and
// errExchangeRefused while it refuses publishes. Publishing to a missing exchange would close
// the channel and fail every other publish outstanding on it, so each exchange is checked once
// per connection on a throw-away channel. The check waits for the broker, so it first flushes
// what cork holds back.
func (m *connManager) checkExchange(name string, cork *amqpx.CorkConn) error {
	m.knownMu.Lock()
	conn, ok := m.knownConn, m.known[name]
	refused, isRefused := m.refused[name]
	m.knownMu.Unlock()
	if isRefused && time.Now().Before(refused.until) {
		return fmt.Errorf("%w: %q: %s", errExchangeRefused, name, refused.reason)
	}
	if ok || name == "" {
		return nil
	}
	if conn == nil {
		return fmt.Errorf("%w: connection lost", errChannelClosed)
	}
	cork.Flush()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("%w: open channel: %v", errChannelClosed, err)
	}
	err = ch.ExchangeDeclarePassive(name, amqp.ExchangeDirect, true, false, false, false, nil)
	var amqpErr *amqp.Error
	switch {
	case err == nil:
		ch.Close()
		m.knownMu.Lock()
		if m.knownConn == conn {
			m.known[name] = true
		}
		m.knownMu.Unlock()
		return nil
	case errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound:
		return fmt.Errorf("%w: %q", errNoExchange, name)
	default:
		ch.Close()
		return fmt.Errorf("%w: check exchange %q: %v", errChannelClosed, name, err)
	}
}
