package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/subscriber"
)

// Any config file loads and validates, or fails with a message; never a panic. What passes
// and also passes the row-sync validation names only valid identifiers.
func FuzzConfig(f *testing.F) {
	f.Add([]byte("queue: q\nconsumer_name: c\nretry:\n  delays: [1s, 10s]\n  max_attempts: 3\nrow_sync:\n  tables:\n    - source: orders\n      target: orders_replica\n      key_columns: [id]\n      columns: [status]\n"))
	f.Add([]byte("row_sync:\n  tables:\n    - source: \"x; DROP TABLE y\"\n      key_columns: [\"a`b\"]\n      columns: [\"col) VALUES (1); --\"]\n"))
	f.Add([]byte("queue: [1, 2]\nunknown: 1\nflush_interval: soon\n"))
	f.Add([]byte("mysql:\n  dsn: 'u:${PW}@tcp(db:3306)/x'\nconsume:\n  queue: q\n  consumer_name: c\n  row_sync:\n    tables: [{source: a, key_columns: [id]}]\n"))
	if data, err := os.ReadFile("../../syncworker.example.yaml"); err == nil {
		f.Add(data)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := loadSettingsFile(path)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error message")
			}
			return
		}
		errs := &configErrors{file: path, lines: s.lines}
		s.expand(func(string) string { return "" }, errs)
		s.setDefaults()
		s.validate(needs{consume: true}, errs)
		if errs.err() != nil {
			return
		}
		rs := s.Consume.RowSync
		if _, err := subscriber.NewRowSync(rs); err != nil {
			return
		}
		for _, m := range rs.Tables {
			for _, name := range append(append([]string{m.Source, m.Target}, m.KeyColumns...), m.Columns...) {
				if name != "" && outbox.ValidateIdentifier(name) != nil {
					t.Fatalf("accepted identifier %q", name)
				}
			}
		}
	})
}
