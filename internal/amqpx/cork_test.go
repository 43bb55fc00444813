package amqpx

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
)

// recordingConn records every Write as one system call would see it.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	fail   error
	closed bool
}

func (r *recordingConn) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes = append(r.writes, append([]byte(nil), b...))
	return len(b), nil
}

func (r *recordingConn) Close() error { r.closed = true; return nil }

func (r *recordingConn) joined() []byte { return bytes.Join(r.writes, nil) }

func TestCorkConnSendsHeldWritesTogetherInOrder(t *testing.T) {
	rec := &recordingConn{}
	c := NewCorkConn(rec)

	mustWrite(t, c, "a") // nobody holds it: straight through
	for _, s := range []string{"b", "c", "d"} {
		c.Hold()
		mustWrite(t, c, s)
		c.Release()
	}
	if len(rec.writes) != 1 {
		t.Fatalf("held writes reached the socket before Flush: %q", rec.writes)
	}
	c.Flush()
	if len(rec.writes) != 2 || string(rec.writes[1]) != "bcd" {
		t.Fatalf("writes = %q, want [a bcd]", rec.writes)
	}
	c.Flush() // nothing held: no empty write
	if len(rec.writes) != 2 {
		t.Fatalf("an empty flush wrote: %q", rec.writes)
	}

	// A write made while nobody holds it takes what is held along, behind it in order.
	c.Hold()
	mustWrite(t, c, "e")
	c.Release()
	mustWrite(t, c, "f")
	if got := string(rec.joined()); got != "abcdef" || len(rec.writes) != 3 {
		t.Fatalf("writes = %q, want [a bcd ef]", rec.writes)
	}

	c.Batch(func() { mustWrite(t, c, "g"); mustWrite(t, c, "h") })
	if len(rec.writes) != 4 || string(rec.writes[3]) != "gh" {
		t.Fatalf("writes = %q, want the batch's as one: [a bcd ef gh]", rec.writes)
	}
}

func TestCorkConnBoundsWhatItHolds(t *testing.T) {
	rec := &recordingConn{}
	c := NewCorkConn(rec)
	chunk := bytes.Repeat([]byte("x"), 1000)
	c.Hold()
	for range 3 * corkFlushBytes / len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	c.Release()
	c.Flush()
	if len(rec.writes) < 3 || len(rec.writes) > 4 {
		t.Fatalf("%d writes for %d held bytes; want pieces of about %d", len(rec.writes), 3*corkFlushBytes, corkFlushBytes)
	}
	for i, w := range rec.writes[:len(rec.writes)-1] {
		if len(w) < corkFlushBytes || len(w) >= corkFlushBytes+len(chunk) {
			t.Fatalf("write %d has %d bytes; want %d to %d", i, len(w), corkFlushBytes, corkFlushBytes+len(chunk))
		}
	}
	if got := len(rec.joined()); got != 3*corkFlushBytes/len(chunk)*len(chunk) {
		t.Fatalf("%d bytes reached the socket, want all", got)
	}
}

func TestCorkConnFailedFlushClosesAndFailsLaterWrites(t *testing.T) {
	rec := &recordingConn{}
	c := NewCorkConn(rec)
	c.Hold()
	mustWrite(t, c, "held")
	c.Release()
	broken := errors.New("connection reset")
	rec.fail = broken
	c.Flush()
	if !rec.closed {
		t.Fatal("a failed flush left the connection open: its reader would not notice")
	}
	if _, err := c.Write([]byte("next")); !errors.Is(err, broken) {
		t.Fatalf("write after a failed flush: %v, want %v", err, broken)
	}
}

func mustWrite(t *testing.T, c *CorkConn, s string) {
	t.Helper()
	if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}
