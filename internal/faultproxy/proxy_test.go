package faultproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte(line))
				}
			}()
		}
	}()
	return l.Addr().String()
}

func roundTrip(c net.Conn, r *bufio.Reader, msg string, timeout time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	return r.ReadString('\n')
}

func TestProxyForwardsCutsPausesAndRefuses(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	// A round trip that must succeed gets 10 s: on a loaded machine 1 s is not certain. The ones
	// that must fail keep short waits; the proxy closes cut and refused connections at once.
	if got, err := roundTrip(c, r, "hello", 10*time.Second); err != nil || got != "hello\n" {
		t.Fatalf("forward: got %q, %v", got, err)
	}

	p.Pause()
	if _, err := roundTrip(c, r, "held", 200*time.Millisecond); err == nil {
		t.Fatal("paused proxy forwarded data")
	}
	p.Resume()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "held\n" {
		t.Fatalf("after resume: got %q, %v", got, err)
	}

	p.Cut()
	if _, err := roundTrip(c, r, "after cut", time.Second); err == nil {
		t.Fatal("connection survived Cut")
	}

	p.Refuse(true)
	c2, err := net.Dial("tcp", p.Addr())
	if err == nil {
		if _, err := roundTrip(c2, bufio.NewReader(c2), "refused", time.Second); err == nil {
			t.Fatal("refusing proxy forwarded a new connection")
		}
		c2.Close()
	}
	p.Refuse(false)
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if got, err := roundTrip(c3, bufio.NewReader(c3), "again", 10*time.Second); err != nil || got != "again\n" {
		t.Fatalf("after refuse off: got %q, %v", got, err)
	}
	if p.Accepted() != 3 {
		t.Fatalf("Accepted() = %d, want 3", p.Accepted())
	}
}
