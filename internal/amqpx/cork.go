package amqpx

import (
	"crypto/tls"
	"net"
	"sync"
)

// CorkConn is a net.Conn that can hold writes back to send them together: writes made while
// someone holds it are buffered until Flush, or until a write made while nobody holds it.
// A publisher holds it during each publish of a batch and flushes after the batch, so the
// batch costs one system call instead of one per message.
//
// Whoever holds it must Flush before waiting on anything: a held-back request gets no answer,
// and another goroutine's write that happened during the hold may be in the buffer too.
type CorkConn struct {
	net.Conn

	mu    sync.Mutex
	holds int
	buf   []byte
	err   error // the write error that broke the connection
}

// corkFlushBytes bounds the buffer: a batch larger than this goes out in pieces.
const corkFlushBytes = 64 << 10

// NewCorkConn wraps c.
func NewCorkConn(c net.Conn) *CorkConn { return &CorkConn{Conn: c} }

// Write sends b, or buffers it while held.
func (c *CorkConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.holds == 0 && len(c.buf) == 0 {
		return c.write(b)
	}
	c.buf = append(c.buf, b...)
	if c.holds == 0 || len(c.buf) >= corkFlushBytes {
		c.flushLocked()
	}
	return len(b), c.err
}

// Hold buffers writes until the matching Release and a Flush.
func (c *CorkConn) Hold() {
	c.mu.Lock()
	c.holds++
	c.mu.Unlock()
}

// Release ends one Hold; what is buffered stays there until Flush.
func (c *CorkConn) Release() {
	c.mu.Lock()
	c.holds--
	c.mu.Unlock()
}

// Batch holds back the writes f makes, then sends them together. f must not wait on the
// broker.
func (c *CorkConn) Batch(f func()) {
	c.Hold()
	f()
	c.Release()
	c.Flush()
}

// Flush sends what is buffered.
func (c *CorkConn) Flush() {
	c.mu.Lock()
	c.flushLocked()
	c.mu.Unlock()
}

// ConnectionState passes the TLS state of the wrapped connection through, so that
// amqp.Connection.ConnectionState still reports it; zero for a plain connection.
func (c *CorkConn) ConnectionState() tls.ConnectionState {
	if tc, ok := c.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}

func (c *CorkConn) flushLocked() {
	if len(c.buf) == 0 || c.err != nil {
		return
	}
	_, _ = c.write(c.buf)
	c.buf = c.buf[:0]
}

// write sends b. A failure closes the connection so that its reader notices at once: the
// client took the buffered writes as sent, and their confirms will never come.
func (c *CorkConn) write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil {
		c.err = err
		c.Conn.Close()
	}
	return n, err
}
