package tlsconfig_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/syncworker/syncworker/internal/tlsconfig"
)

func TestExplainLeavesOtherErrorsAlone(t *testing.T) {
	t.Parallel()
	if tlsconfig.Explain(nil, "MySQL", "db:3306", "mysql.tls") != nil {
		t.Fatal("nil must stay nil")
	}
	if err := tlsconfig.Explain(io.EOF, "MySQL", "db:3306", "mysql.tls"); err != io.EOF {
		t.Fatalf("unrelated error changed: %v", err)
	}
}

func TestExplainRecognisesFlattenedAlertsAndNoTLS(t *testing.T) {
	t.Parallel()
	// amqp091 reports an alert received after the handshake as text inside its own error.
	flat := errors.New(`Exception (501) Reason: "remote error: tls: bad certificate"`)
	err := tlsconfig.Explain(flat, "RabbitMQ", "mq:5671", "amqp.tls")
	want := "TLS handshake with RabbitMQ at mq:5671 failed: the server rejected the client certificate: bad certificate (check amqp.tls.cert_file and amqp.tls.key_file)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if !errors.Is(err, flat) {
		t.Fatal("the original error is not wrapped")
	}

	err = tlsconfig.Explain(mysql.ErrNoTLS, "MySQL", "db:3306", "mysql.tls")
	if err == nil || !strings.Contains(err.Error(), "does not support TLS") {
		t.Fatalf("got %v", err)
	}
}
