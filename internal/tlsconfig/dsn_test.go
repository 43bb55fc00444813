package tlsconfig_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/syncworker/syncworker/internal/testenv/tlstest"
	"github.com/syncworker/syncworker/internal/tlsconfig"
)

func tlsParam(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn) // also proves the registered name resolves
	if err != nil {
		t.Fatalf("ParseDSN(%q): %v", dsn, err)
	}
	return cfg.TLSConfig
}

func TestApplyToDSN(t *testing.T) {
	t.Parallel()
	certs := tlstest.NewCerts(t)
	other := tlstest.NewCerts(t)
	f := tlsconfig.Files{CAFile: certs.CAFile}
	const base = "app:secret@tcp(db.internal:3306)/orders?parseTime=true"

	t.Run("zero Files leave the DSN alone", func(t *testing.T) {
		got, err := tlsconfig.ApplyToDSN(base+"&tls=skip-verify", tlsconfig.Files{})
		if err != nil || got != base+"&tls=skip-verify" {
			t.Fatalf("got %q, %v", got, err)
		}
	})

	t.Run("same Files give the same registered name, again and again", func(t *testing.T) {
		first, err := tlsconfig.ApplyToDSN(base, f)
		if err != nil {
			t.Fatal(err)
		}
		if tlsParam(t, first) != tlsconfig.RegistryName(f) {
			t.Fatalf("tls=%s, want %s", tlsParam(t, first), tlsconfig.RegistryName(f))
		}
		second, err := tlsconfig.ApplyToDSN(first, f) // its own output is accepted too
		if err != nil || second != first {
			t.Fatalf("second apply: %q, %v; want %q", second, err, first)
		}
		withTrue, err := tlsconfig.ApplyToDSN(base+"&tls=true", f)
		if err != nil || tlsParam(t, withTrue) != tlsconfig.RegistryName(f) {
			t.Fatalf("tls=true should be replaced: %q, %v", withTrue, err)
		}
		if !strings.Contains(first, "parseTime=true") || !strings.Contains(first, "/orders") {
			t.Fatalf("other DSN settings lost: %q", first)
		}
	})

	t.Run("different Files get different names", func(t *testing.T) {
		if tlsconfig.RegistryName(f) == tlsconfig.RegistryName(tlsconfig.Files{CAFile: other.CAFile}) ||
			tlsconfig.RegistryName(f) == tlsconfig.RegistryName(tlsconfig.Files{CAFile: certs.CAFile, ServerName: "x"}) {
			t.Fatal("registry names collide")
		}
	})

	t.Run("a DSN choosing its own TLS mode conflicts", func(t *testing.T) {
		for _, mode := range []string{"skip-verify", "false", "preferred"} {
			_, err := tlsconfig.ApplyToDSN(base+"&tls="+mode, f)
			if !errors.Is(err, tlsconfig.ErrDSNConflict) {
				t.Errorf("tls=%s: got %v, want ErrDSNConflict", mode, err)
			}
		}
	})

	t.Run("bad files are reported, the password is not", func(t *testing.T) {
		_, err := tlsconfig.ApplyToDSN(base, tlsconfig.Files{CertFile: certs.ClientCertFile})
		if !errors.Is(err, tlsconfig.ErrMissingPair) {
			t.Fatalf("got %v, want ErrMissingPair", err)
		}
		_, err = tlsconfig.ApplyToDSN("app:secret@tcp(db:3306", f)
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Fatalf("got %v, want a parse error without the password", err)
		}
	})
}
