package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// interpolateByDefault turns on the driver's interpolateParams unless the DSN sets it (either
// way) or names a character set or collation in which it is unsafe (a multibyte one whose
// characters can end in a backslash byte, such as sjis or gbk; the driver knows which and
// refuses the combination). Without it every statement with parameters is a prepare, an
// execute and a close: three round trips where one does, for every relay sweep, delete and
// inbox insert.
func interpolateByDefault(dsn string) (string, error) {
	return defaultDSNParam(dsn, "interpolateParams", func(cfg *mysql.Config) { cfg.InterpolateParams = true })
}

// defaultDSNParam sets a parameter's default with set unless the DSN names the parameter
// itself. A DSN the driver refuses with the default (interpolateParams with an unsafe
// character set) stays as it was.
func defaultDSNParam(dsn, param string, set func(*mysql.Config)) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("parse the MySQL DSN: %w", err) // the driver's parse errors never echo the password
	}
	if _, named := dsnParams(dsn)[param]; named {
		return dsn, nil
	}
	set(cfg)
	withDefault := cfg.FormatDSN()
	if _, err := mysql.ParseDSN(withDefault); err != nil {
		return dsn, nil
	}
	return withDefault, nil
}

// dsnParams returns the parameters a DSN that mysql.ParseDSN accepted sets.
func dsnParams(dsn string) url.Values {
	params := ""
	if i := strings.LastIndex(dsn, "?"); i >= 0 && i > strings.LastIndex(dsn, "/") {
		params = dsn[i+1:]
	}
	values, _ := url.ParseQuery(params) // ParseDSN accepted the DSN, so its parameters parse
	return values
}

// utcSessionByDefault makes the sessions' time zone UTC unless the DSN sets time_zone. Row
// sync's events carry times as UTC text (outbox.RowUpsert), and a TIMESTAMP column reads text
// in the session's time zone: on a server whose zone is not UTC every such value would be
// stored hours off. DATETIME and DATE columns do not depend on it.
func utcSessionByDefault(dsn string) (string, error) {
	return defaultDSNParam(dsn, "time_zone", func(cfg *mysql.Config) {
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params["time_zone"] = "'+00:00'"
	})
}
