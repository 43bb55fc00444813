package testenv

import (
	"net/url"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/redact"
)

// AMQPURL is the broker URL integration tests use.
func AMQPURL() string { return envOr(EnvAMQPURL, DefaultAMQPURL) }

// Broker gives a test a connection and a random name prefix for its exchanges and queues.
// Names made with Name, or passed to Track, are deleted when the test ends.
type Broker struct {
	URL    string
	Conn   *amqp.Connection
	Prefix string // "swt-<random>." ; scripts/test.sh sweeps leftovers with this prefix

	t       testing.TB
	mu      sync.Mutex
	queues  []string
	exchang []string
}

// NewBroker connects to the test broker, failing the test with instructions when it cannot.
func NewBroker(t testing.TB) *Broker {
	t.Helper()
	Integration(t)
	b := &Broker{URL: AMQPURL(), Prefix: "swt-" + RandomSuffix(10) + ".", t: t}
	conn, err := amqp.DialConfig(b.URL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		t.Fatalf("RabbitMQ is not reachable at %s: %v\n"+
			"Start it (Debian: rabbitmq-server -detached && rabbitmqctl await_startup),\n"+
			"or run ./scripts/test.sh, which starts it; set %s to another broker, or %s=1 to skip integration tests.",
			redact.URL(b.URL), err, EnvAMQPURL, EnvSkip)
	}
	b.Conn = conn
	t.Cleanup(b.cleanup)
	return b
}

// Name returns the prefixed name and tracks it as both a queue and an exchange for cleanup.
func (b *Broker) Name(name string) string {
	full := b.Prefix + name
	b.Track(full)
	return full
}

// Track registers names (queues or exchanges, without adding the prefix) for deletion.
func (b *Broker) Track(names ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queues = append(b.queues, names...)
	b.exchang = append(b.exchang, names...)
}

// Channel opens a channel closed at the end of the test.
func (b *Broker) Channel() *amqp.Channel {
	b.t.Helper()
	ch, err := b.Conn.Channel()
	if err != nil {
		b.t.Fatalf("open channel: %v", err)
	}
	b.t.Cleanup(func() { ch.Close() })
	return ch
}

// Host returns host:port of the broker URL.
func (b *Broker) Host() string {
	u, err := url.Parse(b.URL)
	if err != nil {
		b.t.Fatalf("parse %s: %v", EnvAMQPURL, err)
	}
	if u.Port() == "" {
		return u.Hostname() + ":5672"
	}
	return u.Host
}

// URLVia returns the broker URL with its host replaced by addr (a fault proxy, say).
func (b *Broker) URLVia(addr string) string {
	u, err := url.Parse(b.URL)
	if err != nil {
		b.t.Fatalf("parse %s: %v", EnvAMQPURL, err)
	}
	u.Host = addr
	return u.String()
}

func (b *Broker) cleanup() {
	conn, err := amqp.Dial(b.URL)
	if err != nil {
		b.t.Logf("cleanup: connect to broker: %v", err)
		return
	}
	defer conn.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	// Each delete of a missing entity closes the channel with 404, so use one channel each.
	for _, q := range b.queues {
		if ch, err := conn.Channel(); err == nil {
			ch.QueueDelete(q, false, false, false) //nolint:errcheck // may not exist
			ch.Close()
		}
	}
	for _, x := range b.exchang {
		if ch, err := conn.Channel(); err == nil {
			ch.ExchangeDelete(x, false, false) //nolint:errcheck // may not exist
			ch.Close()
		}
	}
	b.Conn.Close()
}
