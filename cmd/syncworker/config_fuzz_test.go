package main

import (
	"testing"

	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/subscriber"
)

// Any config file decodes strictly or fails with a message; what decodes and passes the
// row-sync validation names only valid identifiers.
func FuzzConsumeConfig(f *testing.F) {
	f.Add([]byte("queue: q\nconsumer_name: c\nretry:\n  delays: [1s, 10s]\n  max_attempts: 3\nrow_sync:\n  tables:\n    - source: orders\n      target: orders_replica\n      key_columns: [id]\n      columns: [status]\n"))
	f.Add([]byte("row_sync:\n  tables:\n    - source: \"x; DROP TABLE y\"\n      key_columns: [\"a`b\"]\n      columns: [\"col) VALUES (1); --\"]\n"))
	f.Add([]byte("queue: [1, 2]\nunknown: 1\nflush_interval: soon\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var cf consumeFile
		if _, err := decodeYAMLStrict("fuzz.yaml", data, &cf); err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		rs := cf.RowSync
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
