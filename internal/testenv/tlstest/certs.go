// Package tlstest gives tests a certificate authority generated at test time, server and
// client certificates signed by it, a TLS-terminating proxy in front of a plaintext service,
// and a throwaway MariaDB server that speaks TLS with those certificates.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs is a fresh CA with one server and one client certificate, written as PEM files.
type Certs struct {
	Dir            string // where the files are
	CAFile         string // the CA certificate
	ServerCertFile string // server certificate for 127.0.0.1, ::1 and localhost
	ServerKeyFile  string
	ClientCertFile string // client certificate (CN syncworker-test-client)
	ClientKeyFile  string

	CAPool *x509.CertPool  // holds the CA certificate, for servers verifying clients
	Server tls.Certificate // the server certificate and key, ready for a tls.Config
	Client tls.Certificate // the client certificate and key
	CACert *x509.Certificate

	caKey *ecdsa.PrivateKey
}

// NewCerts generates a CA, a server and a client certificate (ECDSA P-256, valid for one
// day) and writes them to a new directory under t.TempDir(). Two calls give two unrelated
// CAs, which is how a test gets a "wrong CA".
func NewCerts(t testing.TB) *Certs {
	t.Helper()
	c := &Certs{Dir: t.TempDir()}
	now := time.Now()

	caKey := newKey(t)
	c.caKey = caKey
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "syncworker test CA " + now.Format(time.RFC3339Nano)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	if c.CACert, err = x509.ParseCertificate(caDER); err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}
	c.CAPool = x509.NewCertPool()
	c.CAPool.AddCert(c.CACert)
	c.CAFile = c.write(t, "ca.pem", "CERTIFICATE", caDER)

	c.ServerCertFile, c.ServerKeyFile, c.Server = c.leaf(t, "server", &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	c.ClientCertFile, c.ClientKeyFile, c.Client = c.leaf(t, "client", clientTemplate())
	return c
}

// ExpiredClient writes a client certificate signed by the CA whose validity ended an hour
// ago, and its key.
func (c *Certs) ExpiredClient(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	tmpl := clientTemplate()
	tmpl.NotBefore = time.Now().Add(-48 * time.Hour)
	tmpl.NotAfter = time.Now().Add(-time.Hour)
	certFile, keyFile, _ = c.leaf(t, "expired-client", tmpl)
	return certFile, keyFile
}

func clientTemplate() *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: "syncworker-test-client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// ServerConfig is a server-side tls.Config presenting the server certificate. With
// requireClientCert the peer must present a certificate signed by this CA.
func (c *Certs) ServerConfig(requireClientCert bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{c.Server}, MinVersion: tls.VersionTLS12}
	if requireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = c.CAPool
	}
	return cfg
}

// leaf creates a certificate from tmpl (valid as long as the CA unless tmpl says) signed by
// the CA and writes it and its key.
func (c *Certs) leaf(t testing.TB, name string, tmpl *x509.Certificate) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key := newKey(t)
	tmpl.SerialNumber = serial(t)
	if tmpl.NotAfter.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = c.CACert.NotBefore, c.CACert.NotAfter
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.CACert, &key.PublicKey, c.caKey)
	if err != nil {
		t.Fatalf("create %s certificate: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal %s key: %v", name, err)
	}
	certFile = c.write(t, name+".pem", "CERTIFICATE", der)
	keyFile = c.write(t, name+"-key.pem", "PRIVATE KEY", keyDER)
	pair, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("load %s key pair: %v", name, err)
	}
	return certFile, keyFile, pair
}

func (c *Certs) write(t testing.TB, name, blockType string, der []byte) string {
	t.Helper()
	path := filepath.Join(c.Dir, name)
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	// 0644 so a server started as another user (mariadbd --user=mysql) can read them too.
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return path
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("serial number: %v", err)
	}
	return n
}
