package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/internal/testenv/tlstest"
)

// The mysql.tls and amqp.tls sections reach every connection: migrate and status work against
// a MariaDB that requires TLS and a broker behind a TLS proxy, and fail without the sections.
func TestCommandsUseTLSFromConfig(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	certs := tlstest.NewCerts(t)
	maria := tlstest.StartMariaDB(t, certs)
	proxy := tlstest.NewProxy(t, b.Host(), certs, true)
	q := b.Name("tls")
	topo := applyTestTopology(t, b, q)

	dir := t.TempDir()
	withTLS := filepath.Join(dir, "tls.yaml")
	if err := os.WriteFile(withTLS, []byte(fmt.Sprintf(`
mysql:
  dsn: %q
  tls:
    ca_file: %s
amqp:
  url: %q
  tls:
    ca_file: %s
    cert_file: %s
    key_file: %s
topology:
  file: %s
`, maria.DSN("mysql"), certs.CAFile, "amqps"+strings.TrimPrefix(b.URLVia(proxy.Addr()), "amqp"),
		certs.CAFile, certs.ClientCertFile, certs.ClientKeyFile, topo)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, nil, "", "migrate", "--config", withTLS)
	if code != 0 || !strings.Contains(out, "schema is") && !strings.Contains(out, "applied migrations") {
		t.Fatalf("migrate over TLS: code %d, out %q, err %q", code, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "", "status", "--config", withTLS)
	if code != 0 || !strings.Contains(out, q+".parked") || strings.Contains(out, "does not exist") {
		t.Fatalf("status over TLS: code %d, out %q, err %q", code, out, errOut)
	}
	code, _, errOut = runCLI(t, nil, "", "dlq", "list", "--config", withTLS, "--queue", q)
	if code != 0 {
		t.Fatalf("dlq list over TLS: code %d, err %q", code, errOut)
	}

	// Without the TLS sections the same servers refuse the connection.
	code, _, errOut = runCLI(t, map[string]string{"SYNCWORKER_MYSQL_DSN": maria.DSN("mysql")}, "", "migrate")
	if code == 0 {
		t.Fatalf("migrate without mysql.tls succeeded against a server requiring TLS: %s", errOut)
	}
}
