package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// HandshakeError is a failed TLS handshake, explained for whoever edits the config file.
// Callers can still reach the crypto/tls or crypto/x509 error with errors.As.
type HandshakeError struct {
	Peer   string // what was dialled: "RabbitMQ", "MySQL"
	Addr   string // host:port
	Reason string // what went wrong, in words
	Hint   string // which setting to look at
	Err    error  // the underlying error
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("TLS handshake with %s at %s failed: %s (%s)", e.Peer, e.Addr, e.Reason, e.Hint)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// Explain turns err into a *HandshakeError when it is a TLS failure it recognises, naming
// the settings under prefix ("amqp.tls", "mysql.tls") to check. Any other error, and nil,
// is returned unchanged.
func Explain(err error, peer, addr, prefix string) error {
	if err == nil {
		return nil
	}
	reason, hint, ok := explain(err, prefix)
	if !ok {
		return err
	}
	return &HandshakeError{Peer: peer, Addr: addr, Reason: reason, Hint: hint, Err: err}
}

func explain(err error, prefix string) (reason, hint string, ok bool) {
	// crypto/x509 and crypto/tls return these as values.
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknownCA):
		return "certificate signed by unknown authority", "check " + prefix + ".ca_file", true
	case errors.As(err, &hostname):
		return fmt.Sprintf("the server certificate is not valid for %q", hostname.Host),
			"check " + prefix + ".server_name and the address", true
	case errors.As(err, &invalid):
		return "the server certificate is not acceptable: " + strings.TrimPrefix(invalid.Error(), "x509: "),
			"check the server's certificate and " + prefix + ".ca_file", true
	case errors.As(err, &record):
		return "the server did not answer with TLS", "is that the server's TLS port? for plaintext use amqp:// or a DSN without " + prefix, true
	case errors.Is(err, mysql.ErrNoTLS):
		return "the server does not support TLS", "enable TLS on the server or remove " + prefix, true
	}
	if alert, ok := remoteAlert(err); ok {
		// The server rejected us with an alert; in TLS 1.3 a refused client certificate
		// arrives this way, on the first read after the handshake looked complete.
		if strings.Contains(alert, "certificate") {
			return "the server rejected the client certificate: " + alert,
				"check " + prefix + ".cert_file and " + prefix + ".key_file", true
		}
		return "the server sent alert: " + alert, "check the server's TLS settings and " + prefix, true
	}
	return "", "", false
}

// remoteAlertPrefix starts the text of a TLS alert received from the peer.
const remoteAlertPrefix = "remote error: tls: "

// remoteAlert finds an alert from the peer: crypto/tls returns it as a *net.OpError, which
// some clients (amqp091 on its first read) flatten into their own error's text.
func remoteAlert(err error) (string, bool) {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return strings.TrimPrefix(op.Err.Error(), "tls: "), true
	}
	msg := err.Error()
	if i := strings.Index(msg, remoteAlertPrefix); i >= 0 {
		return strings.TrimRight(msg[i+len(remoteAlertPrefix):], `"`), true
	}
	return "", false
}
