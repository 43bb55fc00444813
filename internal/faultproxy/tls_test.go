package faultproxy_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/faultproxy"
	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/internal/testenv/tlstest"
)

// copyServer sends every byte back.
func copyServer(t *testing.T) string {
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
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return l.Addr().String()
}

func TestTLSProxyTerminatesTLSAndForwardsPlaintext(t *testing.T) {
	certs := tlstest.NewCerts(t)
	p, err := faultproxy.NewTLS(copyServer(t), certs.ServerConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	c, err := tls.Dial("tcp", p.Addr(), &tls.Config{RootCAs: certs.CAPool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if _, err := c.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if got, err := r.ReadString('\n'); err != nil || got != "hello\n" {
		t.Fatalf("forward over TLS: got %q, %v", got, err)
	}
	p.Cut()
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("TLS connection survived Cut")
	}

	// A client that never finishes its handshake must not hold up Close.
	stuck, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	testenv.Eventually(t, 5*time.Second, func() (bool, string) { return p.Accepted() == 2, "stuck client not accepted yet" })
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits for a client stuck in its TLS handshake")
	}
}
