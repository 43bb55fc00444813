package tlstest

import (
	"testing"

	"github.com/syncworker/syncworker/internal/faultproxy"
)

// NewProxy starts a TLS-terminating faultproxy in front of the plaintext service at target
// (RabbitMQ's 127.0.0.1:5672, say), presenting the server certificate of c. With
// requireClientCert clients must present a certificate signed by c's CA. The proxy is
// closed when the test ends; its fault controls (Cut, Pause, Refuse) work as usual.
func NewProxy(t testing.TB, target string, c *Certs, requireClientCert bool) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.NewTLS(target, c.ServerConfig(requireClientCert))
	if err != nil {
		t.Fatalf("start TLS proxy to %s: %v", target, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
