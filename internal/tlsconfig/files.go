// Package tlsconfig turns the TLS settings of the config file (PEM file names) into a
// *tls.Config for RabbitMQ (amqps://) and MySQL, with errors that name the setting and the
// file that is wrong. Verification of the server is never switched off: there is no
// skip-verify option on purpose.
package tlsconfig

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// Files names the PEM files of a TLS client configuration, as the config file gives them.
// The zero value means "TLS with the system roots and no client certificate".
type Files struct {
	CAFile     string `yaml:"ca_file"`     // CA certificate(s) that sign the server's certificate; empty: the system roots
	CertFile   string `yaml:"cert_file"`   // client certificate, for servers that demand one; needs KeyFile
	KeyFile    string `yaml:"key_file"`    // private key of CertFile (PKCS#8, PKCS#1 or SEC 1)
	ServerName string `yaml:"server_name"` // name the server certificate must carry; empty: the host dialled
}

// Problems found in the files; a *FileError wraps one of these (or an I/O error).
var (
	ErrNotPEM          = errors.New("not PEM-encoded (expected a -----BEGIN ...----- block)")
	ErrNoCertificate   = errors.New("no CERTIFICATE block found")
	ErrNoPrivateKey    = errors.New("no PRIVATE KEY block found")
	ErrKeyMismatch     = errors.New("private key does not match the certificate in cert_file")
	ErrMissingPair     = errors.New("cert_file and key_file must be set together")
	ErrCertExpired     = errors.New("certificate has expired or is not valid yet")
	ErrUnsupportedKey  = errors.New("private key type is not supported")
	ErrKeyDoesNotParse = errors.New("private key does not parse")
)

// FileError says which setting, and which file, is wrong and how.
type FileError struct {
	Key  string // the setting: "ca_file", "cert_file" or "key_file", prefixed by ValidateAs
	Path string // the file named by the setting
	Err  error  // one of the Err* problems above, or the I/O error
}

func (e *FileError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s: %v", e.Key, e.Err)
	}
	return fmt.Sprintf("%s %q: %v", e.Key, e.Path, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// IsZero reports whether no setting is given.
func (f Files) IsZero() bool { return f == Files{} }

// Validate reads and checks every file, returning every problem at once (errors.Join of
// *FileError): cert_file and key_file both or neither, files readable and PEM, the CA and
// client certificates parse, the key matches the certificate, the client certificate is
// within its validity period.
func (f Files) Validate() error { return f.ValidateAs("") }

// ValidateAs is Validate with the settings named under prefix, e.g. "amqp.tls" gives
// "amqp.tls.ca_file" in the errors.
func (f Files) ValidateAs(prefix string) error {
	_, err := f.build(prefix)
	return err
}

// Build reads the files and returns a client tls.Config: root CAs from CAFile (nil, the
// system roots, when empty), the client certificate from CertFile/KeyFile, ServerName, and
// TLS 1.2 as the oldest version. It returns the same errors as Validate. Each call reads the
// files again, so a new Build picks up rotated certificates.
func (f Files) Build() (*tls.Config, error) { return f.build("") }

func (f Files) build(prefix string) (*tls.Config, error) {
	key := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + "." + name
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	var errs []error
	if f.CAFile != "" {
		pool, err := loadCAs(f.CAFile)
		if err != nil {
			errs = append(errs, &FileError{Key: key("ca_file"), Path: f.CAFile, Err: err})
		}
		cfg.RootCAs = pool
	}
	pair, pairErrs := f.clientCertificate(key)
	errs = append(errs, pairErrs...)
	if pair != nil {
		cfg.Certificates = []tls.Certificate{*pair}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// loadCAs reads every CERTIFICATE block of path into a pool.
func loadCAs(path string) (*x509.CertPool, error) {
	certs, err := readCertificates(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// clientCertificate reads CertFile and KeyFile, reporting the problems of each file
// separately so that all of them show up at once. It returns nil and no errors when neither
// is set.
func (f Files) clientCertificate(key func(string) string) (*tls.Certificate, []error) {
	var (
		errs  []error
		certs []*x509.Certificate
		priv  crypto.Signer
	)
	if f.CertFile != "" {
		var err error
		if certs, err = readCertificates(f.CertFile); err == nil && !within(certs[0], time.Now()) {
			err = fmt.Errorf("%w (valid %s to %s)", ErrCertExpired,
				certs[0].NotBefore.Format(time.RFC3339), certs[0].NotAfter.Format(time.RFC3339))
		}
		if err != nil {
			errs = append(errs, &FileError{Key: key("cert_file"), Path: f.CertFile, Err: err})
		}
	} else if f.KeyFile != "" {
		errs = append(errs, &FileError{Key: key("cert_file"), Err: fmt.Errorf("%w (cert_file is empty)", ErrMissingPair)})
	}
	if f.KeyFile != "" {
		var err error
		if priv, err = readPrivateKey(f.KeyFile); err != nil {
			errs = append(errs, &FileError{Key: key("key_file"), Path: f.KeyFile, Err: err})
		}
	} else if f.CertFile != "" {
		errs = append(errs, &FileError{Key: key("key_file"), Err: fmt.Errorf("%w (key_file is empty)", ErrMissingPair)})
	}
	if len(errs) > 0 || f.CertFile == "" {
		return nil, errs
	}
	pub, ok := priv.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(certs[0].PublicKey) {
		return nil, []error{&FileError{Key: key("key_file"), Path: f.KeyFile, Err: ErrKeyMismatch}}
	}
	pair := &tls.Certificate{PrivateKey: priv, Leaf: certs[0]}
	for _, c := range certs {
		pair.Certificate = append(pair.Certificate, c.Raw)
	}
	return pair, nil
}

func within(c *x509.Certificate, now time.Time) bool {
	return !now.Before(c.NotBefore) && !now.After(c.NotAfter)
}

// readCertificates parses every CERTIFICATE block of a PEM file; there must be one at least.
func readCertificates(path string) ([]*x509.Certificate, error) {
	blocks, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	var others []string
	for _, b := range blocks {
		if b.Type != "CERTIFICATE" {
			others = append(others, b.Type)
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w (found %s)", ErrNoCertificate, strings.Join(others, ", "))
	}
	return certs, nil
}

// readPrivateKey parses the first private key block of a PEM file.
func readPrivateKey(path string) (crypto.Signer, error) {
	blocks, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	for _, b := range blocks {
		var key any
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeyDoesNotParse, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, key)
		}
		return signer, nil
	}
	return nil, ErrNoPrivateKey
}

// readPEM returns every PEM block of path, or ErrNotPEM when there is none.
func readPEM(path string) ([]*pem.Block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// The path is already in the FileError; keep only the reason.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err
		}
		return nil, err
	}
	var blocks []*pem.Block
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		return nil, ErrNotPEM
	}
	return blocks, nil
}
