package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/syncworker/syncworker/internal/testenv"
)

func TestInterpolateByDefault(t *testing.T) {
	for _, tc := range []struct {
		dsn         string
		interpolate bool
	}{
		{"root@tcp(127.0.0.1:3306)/app", true},
		{"u:p@tcp(db:3306)/app?parseTime=true&loc=UTC", true},
		{"u:p?w/x@tcp(db:3306)/app", true}, // '?' and '/' in the password are not parameters
		{"u:p@tcp(db:3306)/app?interpolateParams=false", false},
		{"u:p@tcp(db:3306)/app?interpolateParams=true", true},
		{"u:p@tcp(db:3306)/app?charset=sjis", false},
		{"u:p@tcp(db:3306)/app?charset=utf8mb4,GBK", false},
		{"u:p@tcp(db:3306)/app?charset=utf8mb4", true},
		{"u:p@tcp(db:3306)/app?charset=gb18030", false},
		{"u:p@tcp(db:3306)/app?collation=sjis_japanese_ci", false},
		{"u:p@tcp(db:3306)/app?collation=utf8mb4_unicode_ci", true},
		{"u:p@tcp(db:3306)/app?charset=gb2312", true}, // its second bytes are never a backslash
	} {
		got, err := interpolateByDefault(tc.dsn)
		if err != nil {
			t.Fatalf("%s: %v", tc.dsn, err)
		}
		cfg, err := mysql.ParseDSN(got)
		if err != nil {
			t.Fatalf("%s became %s, which does not parse: %v", tc.dsn, got, err)
		}
		if cfg.InterpolateParams != tc.interpolate {
			t.Errorf("%s: interpolateParams = %v, want %v (%s)", tc.dsn, cfg.InterpolateParams, tc.interpolate, got)
		}
		orig, _ := mysql.ParseDSN(tc.dsn)
		if cfg.User != orig.User || cfg.Passwd != orig.Passwd || cfg.Addr != orig.Addr || cfg.DBName != orig.DBName {
			t.Errorf("%s: connection settings changed: %s", tc.dsn, got)
		}
	}
	if _, err := interpolateByDefault("u:secret@tcp(h:1)/db?interpolateParams=maybe"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("a bad DSN gives %v, want a parse error", err)
	}
}

// consume's sessions are in UTC unless the DSN names a time zone: row-sync events carry times
// as UTC text, which a TIMESTAMP column would otherwise read in the server's zone.
func TestConsumeSessionsAreInUTCUnlessTheDSNSaysOtherwise(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	for _, tc := range []struct{ params, want string }{
		{"", "+00:00"},
		{"time_zone=%27%2B02%3A00%27", "+02:00"},
	} {
		dsn := d.DSN
		if tc.params != "" {
			sep := "?"
			if strings.Contains(dsn, "?") {
				sep = "&"
			}
			dsn += sep + tc.params
		}
		s := &settings{}
		s.MySQL.DSN = dsn
		db, err := openDB(s, nil, utcSessionByDefault)
		if err != nil {
			t.Fatal(err)
		}
		var zone string
		err = db.QueryRow("SELECT @@session.time_zone").Scan(&zone)
		db.Close()
		if err != nil || zone != tc.want {
			t.Errorf("DSN parameters %q: session time zone %q (%v), want %q", tc.params, zone, err, tc.want)
		}
	}
}

// The MySQL driver's own messages go to the command's logger (JSON lines), not to stderr as
// plain text: here the one about a pooled connection the server killed.
func TestDriverMessagesGoToTheLogger(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	core, logs := observer.New(zap.WarnLevel)
	s := &settings{}
	s.MySQL.DSN = d.DSN
	db, err := openDB(s, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var id int64
	if err := db.QueryRow("SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DB.Exec(fmt.Sprintf("KILL CONNECTION %d", id)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		db.Exec("SELECT 1") //nolint:errcheck // the first use finds the killed connection
		for _, e := range logs.All() {
			if strings.HasPrefix(e.Message, "mysql driver: ") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no driver message logged; logged %d entries", logs.Len())
	})
}
