// Package redact removes passwords from DSNs and URLs before they are printed.
package redact

import (
	"net/url"
	"strings"

	"github.com/go-sql-driver/mysql"
)

const mask = "xxxxx"

// DSN returns a MySQL DSN with its password replaced. A DSN that does not parse is reduced
// to what follows its last '@', which never holds the password.
func DSN(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		if i := strings.LastIndex(dsn, "@"); i >= 0 {
			return mask + dsn[i:]
		}
		return dsn
	}
	if cfg.Passwd != "" {
		cfg.Passwd = mask
	}
	return cfg.FormatDSN()
}

// URL returns an AMQP (or any) URL with its password replaced. A URL that does not parse is
// reduced to what follows its last '@'.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			return mask + raw[i:]
		}
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), mask)
	}
	return u.String()
}

// Secrets replaces every occurrence of the given secrets in s, for error texts that may echo
// a DSN or URL back.
func Secrets(s string, secrets ...string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, mask)
		}
	}
	return s
}
