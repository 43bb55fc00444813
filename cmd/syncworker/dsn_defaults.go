package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// unsafeInterpolationCharsets are the multibyte character sets in which a backslash can be the
// second byte of a character, so escaping parameters on the client is not safe (the driver
// refuses interpolateParams with their collations, but not with charset=).
var unsafeInterpolationCharsets = []string{"big5", "cp932", "gb2312", "gbk", "sjis"}

// interpolateByDefault turns on the driver's interpolateParams unless the DSN sets it (either
// way) or names a character set in which it is unsafe. Without it every statement with
// parameters is a prepare, an execute and a close: three round trips where one does, for every
// relay sweep, delete and inbox insert.
func interpolateByDefault(dsn string) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("parse the MySQL DSN: %w", err) // the driver's parse errors never echo the password
	}
	params := ""
	if i := strings.LastIndex(dsn, "?"); i >= 0 && i > strings.LastIndex(dsn, "/") {
		params = dsn[i+1:]
	}
	values, _ := url.ParseQuery(params) // ParseDSN accepted the DSN, so its parameters parse
	if _, set := values["interpolateParams"]; set {
		return dsn, nil
	}
	for _, charset := range strings.Split(values.Get("charset"), ",") {
		for _, unsafe := range unsafeInterpolationCharsets {
			if strings.EqualFold(strings.TrimSpace(charset), unsafe) {
				return dsn, nil
			}
		}
	}
	cfg.InterpolateParams = true
	return cfg.FormatDSN(), nil
}
