// Package amqpx holds the AMQP connection machinery the relay and the subscriber share.
package amqpx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/syncworker/syncworker/internal/redact"
	"github.com/syncworker/syncworker/internal/tlsconfig"
)

// DialConfig says how to reach the broker.
type DialConfig struct {
	URL       string        // amqp:// or amqps://
	TLS       *tls.Config   // for amqps://; nil uses the system roots
	Name      string        // connection name shown by the broker (connection_name property)
	Heartbeat time.Duration // default 10s
	Timeout   time.Duration // TCP connect and handshake timeout, default 10s
	// WrapConn, when set, wraps the connection before the AMQP handshake (after TLS), for
	// instrumentation; the relay wraps what it returns once more, to batch its writes.
	WrapConn func(net.Conn) net.Conn
	// OnFailure, when set, is called with every failed dial of DialRetry before it waits, so
	// a caller can tell why it is not connected (the error never contains the password).
	OnFailure func(error)
}

// TLSConfigKey is the config file section named in TLS handshake errors.
const TLSConfigKey = "amqp.tls"

// Dial opens one connection, with errors that never contain the password. A failed TLS
// handshake is a *tlsconfig.HandshakeError saying what to check.
func Dial(cfg DialConfig) (*amqp.Connection, error) {
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	props := amqp.NewConnectionProperties()
	if cfg.Name != "" {
		props.SetClientConnectionName(cfg.Name)
	}
	dialURL, dial := cfg.URL, amqp.DefaultDial(cfg.Timeout)
	var ownTLS *tlsDial
	uri, err := parseURL(cfg.URL)
	if err != nil {
		return nil, badURL(cfg.URL, err)
	}
	if uri.Scheme == "amqps" {
		ownTLS = &tlsDial{cfg: clientTLS(cfg.TLS, uri.Host), timeout: cfg.Timeout}
		uri.Scheme = "amqp" // the TLS session is made by ownTLS.dial; the port stays
		dialURL, dial = uri.String(), ownTLS.dial
	}
	if wrap := cfg.WrapConn; wrap != nil {
		plain := dial
		dial = func(network, addr string) (net.Conn, error) {
			c, err := plain(network, addr)
			if err != nil {
				return nil, err
			}
			return wrap(c), nil
		}
	}
	conn, err := amqp.DialConfig(dialURL, amqp.Config{
		Heartbeat:  cfg.Heartbeat,
		Properties: props,
		Dial:       dial,
	})
	if err != nil {
		explained := err
		if ownTLS != nil {
			if readErr := ownTLS.readErr(); readErr != nil {
				explained = readErr // the server's alert, not what amqp091 hit afterwards
			}
		}
		var herr *tlsconfig.HandshakeError
		if errors.As(tlsconfig.Explain(explained, "RabbitMQ", address(cfg.URL), TLSConfigKey), &herr) {
			return nil, herr // names host:port only, never the password
		}
		return nil, fmt.Errorf("connect to RabbitMQ at %s: %s", redact.URL(cfg.URL), redact.Secrets(err.Error(), password(cfg.URL)))
	}
	return conn, nil
}

// DialRetry dials until it succeeds or ctx ends, waiting an exponential backoff with jitter
// (100ms growing to 10s) between attempts and logging each failure.
func DialRetry(ctx context.Context, cfg DialConfig, log *zap.Logger) (*amqp.Connection, error) {
	if log == nil {
		log = zap.NewNop()
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = 0
	b.Reset() // the constructor started from its own 500ms initial interval
	for {
		conn, err := Dial(cfg)
		if err == nil {
			return conn, nil
		}
		if cfg.OnFailure != nil {
			cfg.OnFailure(err)
		}
		wait := b.NextBackOff()
		log.Warn("broker connection failed; retrying", zap.Error(err), zap.Duration("retry_in", wait))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// DialRetryCorked is DialRetry for a connection whose socket is a CorkConn (around what
// cfg.WrapConn returns, if set), which it returns too.
func DialRetryCorked(ctx context.Context, cfg DialConfig, log *zap.Logger) (*amqp.Connection, *CorkConn, error) {
	var cork *CorkConn
	wrap := cfg.WrapConn
	cfg.WrapConn = func(c net.Conn) net.Conn {
		if wrap != nil {
			c = wrap(c)
		}
		cork = NewCorkConn(c)
		return cork
	}
	conn, err := DialRetry(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	return conn, cork, nil
}

// clientTLS returns a copy of cfg (a default one when nil) naming host as the server unless
// cfg names one: the caller's config stays reusable for other hosts.
func clientTLS(cfg *tls.Config, host string) *tls.Config {
	c := cfg.Clone()
	if c == nil {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	return c
}

func password(rawURL string) string {
	u, err := parseURL(rawURL)
	if err != nil {
		return ""
	}
	return u.Password
}

// address is the host:port of rawURL, for messages.
func address(rawURL string) string {
	u, err := parseURL(rawURL)
	if err != nil {
		return redact.URL(rawURL)
	}
	return net.JoinHostPort(u.Host, strconv.Itoa(u.Port))
}

func parseURL(rawURL string) (amqp.URI, error) { return amqp.ParseURI(rawURL) }

// badURL explains a URL that does not parse without echoing it: the parser's error quotes
// the whole URL, password included, and an escape error quotes part of the password.
func badURL(rawURL string, err error) error {
	why := "it does not parse"
	var uerr *url.Error
	var esc url.EscapeError
	if errors.As(err, &uerr) && !errors.As(err, &esc) {
		why = uerr.Err.Error()
	} else if !errors.As(err, &uerr) {
		why = redact.Secrets(err.Error(), rawURL)
	}
	return fmt.Errorf("connect to RabbitMQ at %s: invalid URL: %s (want amqp[s]://user:password@host:port/vhost, "+
		"with reserved characters in the user and password percent-encoded)", redact.URL(rawURL), why)
}
