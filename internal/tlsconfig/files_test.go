package tlsconfig_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncworker/syncworker/internal/testenv/tlstest"
	"github.com/syncworker/syncworker/internal/tlsconfig"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBuild(t *testing.T) {
	t.Parallel()
	certs := tlstest.NewCerts(t)

	tc, err := tlsconfig.Files{CAFile: certs.CAFile, CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile, ServerName: "db.internal"}.Build()
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "db.internal" || tc.MinVersion != tls.VersionTLS12 || tc.InsecureSkipVerify {
		t.Fatalf("unexpected config: roots=%v certs=%d server=%q min=%x skip=%v",
			tc.RootCAs != nil, len(tc.Certificates), tc.ServerName, tc.MinVersion, tc.InsecureSkipVerify)
	}
	opts := x509.VerifyOptions{Roots: certs.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := tc.Certificates[0].Leaf.Verify(opts); err != nil {
		t.Fatalf("loaded client certificate does not verify against its CA: %v", err)
	}

	zero, err := tlsconfig.Files{}.Build()
	if err != nil {
		t.Fatalf("Build of zero Files: %v", err)
	}
	if zero.RootCAs != nil || len(zero.Certificates) != 0 || zero.MinVersion != tls.VersionTLS12 {
		t.Fatal("zero Files must mean system roots, no client certificate, TLS 1.2+")
	}
}

func TestValidateReportsEachProblem(t *testing.T) {
	t.Parallel()
	certs := tlstest.NewCerts(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	garbage := writeFile(t, "garbage.pem", "this is not a certificate\n")
	keyOnly := writeFile(t, "key-only.pem", mustRead(t, certs.ClientKeyFile))
	expiredCert, expiredKey := certs.ExpiredClient(t)

	cases := []struct {
		name string
		f    tlsconfig.Files
		key  string // setting named in the error
		is   error
		text string
	}{
		{"missing CA file", tlsconfig.Files{CAFile: missing}, "ca_file", fs.ErrNotExist, "no such file"},
		{"CA file not PEM", tlsconfig.Files{CAFile: garbage}, "ca_file", tlsconfig.ErrNotPEM, "not PEM"},
		{"CA file without a certificate", tlsconfig.Files{CAFile: keyOnly}, "ca_file", tlsconfig.ErrNoCertificate, "found PRIVATE KEY"},
		{"cert without key", tlsconfig.Files{CertFile: certs.ClientCertFile}, "key_file", tlsconfig.ErrMissingPair, "key_file is empty"},
		{"key without cert", tlsconfig.Files{KeyFile: certs.ClientKeyFile}, "cert_file", tlsconfig.ErrMissingPair, "cert_file is empty"},
		{"key not PEM", tlsconfig.Files{CertFile: certs.ClientCertFile, KeyFile: garbage}, "key_file", tlsconfig.ErrNotPEM, "not PEM"},
		{"key file holds a certificate", tlsconfig.Files{CertFile: certs.ClientCertFile, KeyFile: certs.CAFile}, "key_file", tlsconfig.ErrNoPrivateKey, "no PRIVATE KEY"},
		{"expired client certificate", tlsconfig.Files{CertFile: expiredCert, KeyFile: expiredKey}, "cert_file", tlsconfig.ErrCertExpired, "has expired"},
		{"key of another certificate", tlsconfig.Files{CertFile: certs.ClientCertFile, KeyFile: certs.ServerKeyFile}, "key_file", tlsconfig.ErrKeyMismatch, "does not match"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.f.Validate()
			if !errors.Is(err, c.is) {
				t.Fatalf("got %v, want %v", err, c.is)
			}
			var fe *tlsconfig.FileError
			if !errors.As(err, &fe) || fe.Key != c.key {
				t.Fatalf("error does not name setting %s: %v", c.key, err)
			}
			if !strings.Contains(err.Error(), c.text) {
				t.Fatalf("error %q does not say %q", err, c.text)
			}
			if _, berr := c.f.Build(); berr == nil || berr.Error() != err.Error() {
				t.Fatalf("Build and Validate disagree: %v vs %v", berr, err)
			}
		})
	}
}

func TestValidateListsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	garbage := writeFile(t, "garbage.pem", "-----BEGIN NOTHING\n")
	missing := filepath.Join(t.TempDir(), "client.pem")

	err := tlsconfig.Files{CAFile: garbage, CertFile: missing}.ValidateAs("amqp.tls")
	if err == nil {
		t.Fatal("Validate passed broken files")
	}
	t.Logf("error as a user sees it:\n%v", err)
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok || len(joined.Unwrap()) != 3 {
		t.Fatalf("want 3 problems at once, got: %v", err)
	}
	for _, want := range []string{
		`amqp.tls.ca_file "` + garbage + `": not PEM`,
		`amqp.tls.cert_file "` + missing + `": no such file`,
		`amqp.tls.key_file: cert_file and key_file must be set together`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q", want)
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
