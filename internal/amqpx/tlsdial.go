package amqpx

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// tlsDial makes the TLS connection for an amqps:// URL itself instead of leaving it to
// amqp091, and keeps the first error read from the session. Under TLS 1.3 a server refuses a
// client certificate only after the handshake, as an alert on the first read; amqp091 then
// reports whatever its writer hit first ("use of closed network connection"), and the real
// reason would be lost.
type tlsDial struct {
	cfg     *tls.Config
	timeout time.Duration

	mu   sync.Mutex
	conn *readErrConn
}

// dial is an amqp.Config.Dial function.
func (d *tlsDial) dial(network, addr string) (net.Conn, error) {
	raw, err := amqp.DefaultDial(d.timeout)(network, addr) // sets the handshake deadline
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, d.cfg)
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	c := &readErrConn{Conn: tc}
	d.mu.Lock()
	d.conn = c
	d.mu.Unlock()
	return c, nil
}

// readErr returns the first error read from the last session, if any.
func (d *tlsDial) readErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == nil {
		return nil
	}
	return d.conn.firstErr()
}

// readErrConn remembers the first read error of a connection.
type readErrConn struct {
	net.Conn
	mu  sync.Mutex
	err error
}

func (c *readErrConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *readErrConn) firstErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ConnectionState reports the TLS session, for amqp.Connection.ConnectionState.
func (c *readErrConn) ConnectionState() tls.ConnectionState {
	if tc, ok := c.Conn.(*tls.Conn); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}
