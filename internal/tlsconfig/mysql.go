package tlsconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/go-sql-driver/mysql"
)

// ErrDSNConflict means the DSN already chooses a TLS mode of its own (tls=skip-verify,
// tls=false, tls=preferred or another registered name) while TLS files are configured too.
var ErrDSNConflict = errors.New("the DSN's tls parameter conflicts with the configured TLS files")

// ApplyToMySQL makes cfg connect with TLS built from f: it sets cfg.TLS (enough for
// mysql.NewConnector) and registers the same settings with the driver under a name derived
// from f's fields, set as cfg.TLSConfig, so cfg.FormatDSN() still carries them.
//
// The name depends only on f, so calling this again with the same Files replaces the
// registration (re-reading the files) instead of adding one. Zero f leaves cfg alone: the
// DSN's own tls parameter, if any, applies. A DSN tls parameter other than "true" together
// with non-zero f is ErrDSNConflict. The driver checks the server name against the host of
// cfg.Addr when f.ServerName is empty.
func ApplyToMySQL(cfg *mysql.Config, f Files) error {
	if f.IsZero() {
		return nil
	}
	name := RegistryName(f)
	switch cfg.TLSConfig {
	case "", "true", name:
	default:
		return fmt.Errorf("%w: tls=%s; remove it from the DSN or remove mysql.tls", ErrDSNConflict, cfg.TLSConfig)
	}
	tc, err := f.Build()
	if err != nil {
		return err
	}
	// The registry keeps its own copy: the driver sets ServerName on the copy it uses.
	if err := mysql.RegisterTLSConfig(name, tc.Clone()); err != nil {
		return fmt.Errorf("register TLS config with the MySQL driver: %w", err)
	}
	cfg.TLSConfig = name
	cfg.TLS = tc
	return nil
}

// ApplyToDSN is ApplyToMySQL for a DSN string: it returns dsn with tls=<registered name>.
func ApplyToDSN(dsn string, f Files) (string, error) {
	if f.IsZero() {
		return dsn, nil
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("parse the MySQL DSN: %w", err) // the driver's parse errors never echo the password
	}
	if err := ApplyToMySQL(cfg, f); err != nil {
		return "", err
	}
	return cfg.FormatDSN(), nil
}

// RegistryName is the name ApplyToMySQL registers f under: "syncworker-" and a hash of f's
// fields, stable across calls and processes.
func RegistryName(f Files) string {
	h := sha256.New()
	for _, s := range []string{f.CAFile, f.CertFile, f.KeyFile, f.ServerName} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "syncworker-" + hex.EncodeToString(h.Sum(nil))[:16]
}
