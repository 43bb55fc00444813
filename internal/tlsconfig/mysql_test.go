package tlsconfig_test

import (
	"context"
	"crypto/x509"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/syncworker/syncworker/internal/testenv/tlstest"
	"github.com/syncworker/syncworker/internal/tlsconfig"
)

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// One throwaway server for the whole scenario: it takes a couple of seconds to start.
func TestMySQLOverTLS(t *testing.T) {
	t.Parallel()
	certs := tlstest.NewCerts(t)
	m := tlstest.StartMariaDB(t, certs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("plaintext is refused by the server", func(t *testing.T) {
		// MariaDB answers an insecure login under require_secure_transport with "access
		// denied" (1045); the same user gets in over TLS below.
		err := open(t, m.DSN("")).PingContext(ctx)
		var merr *mysql.MySQLError
		if !errors.As(err, &merr) || merr.Number != 1045 {
			t.Fatalf("plaintext connection: got %v, want access denied (the server must require TLS, or this test proves nothing)", err)
		}
	})

	t.Run("right CA connects and queries over TLS", func(t *testing.T) {
		dsn, err := tlsconfig.ApplyToDSN(m.DSN(""), tlsconfig.Files{CAFile: certs.CAFile})
		if err != nil {
			t.Fatalf("ApplyToDSN: %v", err)
		}
		var name, version string
		if err := open(t, dsn).QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_version'").Scan(&name, &version); err != nil {
			t.Fatalf("query over TLS: %v", err)
		}
		if !strings.HasPrefix(version, "TLSv1.") {
			t.Fatalf("Ssl_version = %q, want TLSv1.x", version)
		}
	})

	t.Run("client certificate for a REQUIRE X509 user, through a connector", func(t *testing.T) {
		admin := open(t, "root@unix("+m.Socket+")/")
		if _, err := admin.ExecContext(ctx, "CREATE USER 'x509'@'127.0.0.1' REQUIRE X509"); err != nil {
			t.Fatalf("create user: %v", err)
		}
		dsn := strings.Replace(m.DSN(""), "root@", "x509@", 1)
		connect := func(f tlsconfig.Files) error {
			cfg, err := mysql.ParseDSN(dsn)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlsconfig.ApplyToMySQL(cfg, f); err != nil {
				t.Fatalf("ApplyToMySQL: %v", err)
			}
			conn, err := mysql.NewConnector(cfg)
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(conn)
			defer db.Close()
			var one int
			return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		}
		if err := connect(tlsconfig.Files{CAFile: certs.CAFile}); err == nil {
			t.Fatal("REQUIRE X509 user got in without a client certificate; the next check proves nothing")
		}
		f := tlsconfig.Files{CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile, ServerName: "localhost"}
		if err := connect(f); err != nil {
			t.Fatalf("SELECT 1 with a client certificate: %v", err)
		}
	})

	t.Run("wrong CA fails naming the CA problem", func(t *testing.T) {
		other := tlstest.NewCerts(t)
		dsn, err := tlsconfig.ApplyToDSN(m.DSN(""), tlsconfig.Files{CAFile: other.CAFile})
		if err != nil {
			t.Fatalf("ApplyToDSN: %v", err)
		}
		err = open(t, dsn).PingContext(ctx)
		if err == nil {
			t.Fatal("connected although the server's certificate is not signed by the configured CA")
		}
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("driver error does not carry the x509 error: %T %v", err, err)
		}
		explained := tlsconfig.Explain(err, "MySQL", m.Addr, "mysql.tls")
		t.Logf("error as a user sees it: %v", explained)
		for _, want := range []string{"TLS handshake with MySQL at " + m.Addr + " failed", "certificate signed by unknown authority", "mysql.tls.ca_file"} {
			if !strings.Contains(explained.Error(), want) {
				t.Errorf("error %q does not mention %q", explained, want)
			}
		}
	})

	t.Run("wrong server name fails naming server_name", func(t *testing.T) {
		dsn, err := tlsconfig.ApplyToDSN(m.DSN(""), tlsconfig.Files{CAFile: certs.CAFile, ServerName: "db.example"})
		if err != nil {
			t.Fatalf("ApplyToDSN: %v", err)
		}
		err = tlsconfig.Explain(open(t, dsn).PingContext(ctx), "MySQL", m.Addr, "mysql.tls")
		if err == nil || !strings.Contains(err.Error(), "mysql.tls.server_name") {
			t.Fatalf("got %v, want an error naming mysql.tls.server_name", err)
		}
	})
}
