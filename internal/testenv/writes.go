package testenv

import (
	"net"
	"sync/atomic"
)

// WriteCounter wraps connections (amqpx.DialConfig.WrapConn and the like) and counts the
// writes that reach their sockets: one per system call.
type WriteCounter struct {
	writes atomic.Int64
	conns  atomic.Int64
}

// Wrap returns c counting its writes.
func (w *WriteCounter) Wrap(c net.Conn) net.Conn {
	w.conns.Add(1)
	return countingConn{Conn: c, w: w}
}

// Writes returns the writes made so far on every wrapped connection.
func (w *WriteCounter) Writes() int64 { return w.writes.Load() }

// Conns returns how many connections were wrapped.
func (w *WriteCounter) Conns() int64 { return w.conns.Load() }

type countingConn struct {
	net.Conn
	w *WriteCounter
}

func (c countingConn) Write(b []byte) (int, error) {
	c.w.writes.Add(1)
	return c.Conn.Write(b)
}
