package amqpx_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/internal/testenv/tlstest"
	"github.com/syncworker/syncworker/internal/tlsconfig"
)

// amqpsVia is the test broker's URL pointed at addr with the amqps scheme.
func amqpsVia(b *testenv.Broker, addr string) string {
	return "amqps" + strings.TrimPrefix(b.URLVia(addr), "amqp")
}

func build(t *testing.T, f tlsconfig.Files) *tls.Config {
	t.Helper()
	tc, err := f.Build()
	if err != nil {
		t.Fatalf("build TLS config: %v", err)
	}
	return tc
}

// roundTrip publishes one message with a confirm through conn and gets it back.
func roundTrip(t *testing.T, b *testenv.Broker, conn *amqp.Connection) {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel over TLS: %v", err)
	}
	defer ch.Close()
	q := b.Name("tls")
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatalf("declare queue: %v", err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm mode: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, true, false, amqp.Publishing{Body: []byte("over tls")})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if ok, err := conf.WaitContext(ctx); err != nil || !ok {
		t.Fatalf("publish not confirmed: ok=%v err=%v", ok, err)
	}
	var got amqp.Delivery
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		d, ok, err := ch.Get(q, true)
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		got = d
		return ok, "queue still empty"
	})
	if string(got.Body) != "over tls" {
		t.Fatalf("got body %q, want %q", got.Body, "over tls")
	}
}

// wantHandshakeError checks that err is a *tlsconfig.HandshakeError whose message has every
// one of want and no password.
func wantHandshakeError(t *testing.T, err error, want ...string) *tlsconfig.HandshakeError {
	t.Helper()
	if err == nil {
		t.Fatal("dial succeeded, want a TLS handshake error")
	}
	var herr *tlsconfig.HandshakeError
	if !errors.As(err, &herr) {
		t.Fatalf("error is %T, want *tlsconfig.HandshakeError: %v", err, err)
	}
	msg := err.Error()
	t.Logf("error as a user sees it: %s", msg)
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
	if strings.Contains(msg, "guest:guest") {
		t.Errorf("error %q leaks the password", msg)
	}
	return herr
}

func TestDialTLSWithRightCAPublishesAndGets(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	certs := tlstest.NewCerts(t)
	p := tlstest.NewProxy(t, b.Host(), certs, false)

	// Also wrapped as the relay wraps its connection: the TLS state must still show through.
	for _, wrap := range []func(net.Conn) net.Conn{nil, func(c net.Conn) net.Conn { return amqpx.NewCorkConn(c) }} {
		conn, err := amqpx.Dial(amqpx.DialConfig{URL: amqpsVia(b, p.Addr()), TLS: build(t, tlsconfig.Files{CAFile: certs.CAFile}), WrapConn: wrap})
		if err != nil {
			t.Fatalf("dial amqps through the TLS proxy (wrapped: %v): %v", wrap != nil, err)
		}
		defer conn.Close()
		if st := conn.ConnectionState(); !st.HandshakeComplete || st.Version < tls.VersionTLS12 {
			t.Fatalf("connection (wrapped: %v) is not TLS 1.2+: complete=%v version=%x", wrap != nil, st.HandshakeComplete, st.Version)
		}
		roundTrip(t, b, conn)
	}
}

func TestDialTLSWithWrongCAFailsClearly(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	certs := tlstest.NewCerts(t)
	other := tlstest.NewCerts(t) // an unrelated CA
	p := tlstest.NewProxy(t, b.Host(), certs, false)

	_, err := amqpx.Dial(amqpx.DialConfig{URL: amqpsVia(b, p.Addr()), TLS: build(t, tlsconfig.Files{CAFile: other.CAFile})})
	wantHandshakeError(t, err, "TLS handshake with RabbitMQ at "+p.Addr()+" failed",
		"certificate signed by unknown authority", "amqp.tls.ca_file")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("the x509 error is not reachable with errors.As: %v", err)
	}
}

func TestDialTLSWithWrongServerNameFailsClearly(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	certs := tlstest.NewCerts(t)
	p := tlstest.NewProxy(t, b.Host(), certs, false)

	tc := build(t, tlsconfig.Files{CAFile: certs.CAFile, ServerName: "rabbit.example"})
	_, err := amqpx.Dial(amqpx.DialConfig{URL: amqpsVia(b, p.Addr()), TLS: tc})
	wantHandshakeError(t, err, `not valid for "rabbit.example"`, "amqp.tls.server_name")
}

func TestDialTLSToPlaintextPortFailsClearly(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	certs := tlstest.NewCerts(t)

	_, err := amqpx.Dial(amqpx.DialConfig{URL: amqpsVia(b, b.Host()), TLS: build(t, tlsconfig.Files{CAFile: certs.CAFile})})
	wantHandshakeError(t, err, "did not answer with TLS")
}

func TestDialTLSClientCertificate(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	certs := tlstest.NewCerts(t)
	p := tlstest.NewProxy(t, b.Host(), certs, true)
	url := amqpsVia(b, p.Addr())

	t.Run("without it the proxy refuses", func(t *testing.T) {
		_, err := amqpx.Dial(amqpx.DialConfig{URL: url, TLS: build(t, tlsconfig.Files{CAFile: certs.CAFile})})
		wantHandshakeError(t, err, "client certificate", "amqp.tls.cert_file")
	})
	t.Run("from another CA the proxy refuses", func(t *testing.T) {
		other := tlstest.NewCerts(t)
		_, err := amqpx.Dial(amqpx.DialConfig{URL: url, TLS: build(t, tlsconfig.Files{
			CAFile: certs.CAFile, CertFile: other.ClientCertFile, KeyFile: other.ClientKeyFile})})
		wantHandshakeError(t, err, "client certificate", "amqp.tls.cert_file")
	})
	t.Run("with it messages flow", func(t *testing.T) {
		conn, err := amqpx.Dial(amqpx.DialConfig{URL: url, TLS: build(t, tlsconfig.Files{
			CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile})})
		if err != nil {
			t.Fatalf("dial with a client certificate: %v", err)
		}
		defer conn.Close()
		roundTrip(t, b, conn)
	})
}

// A tls.Config given to Dial is not changed by it, so one config serves several hosts.
func TestDialLeavesTheCallersTLSConfigAlone(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	certs := tlstest.NewCerts(t)
	p := tlstest.NewProxy(t, b.Host(), certs, false)
	tc := build(t, tlsconfig.Files{CAFile: certs.CAFile})

	conn, err := amqpx.Dial(amqpx.DialConfig{URL: amqpsVia(b, p.Addr()), TLS: tc})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.Close()
	if tc.ServerName != "" {
		t.Fatalf("Dial set ServerName %q on the caller's config", tc.ServerName)
	}
}
