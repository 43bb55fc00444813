package outbox_test

import (
	"testing"

	"github.com/syncworker/syncworker/outbox"
)

// BenchmarkDecodeRowChange decodes an upsert shaped as bench apply's events, which every
// row-sync apply does once per message.
func BenchmarkDecodeRowChange(b *testing.B) {
	m, err := outbox.RowUpsert("rows", map[string]any{"id": 12345},
		map[string]any{"name": "row 12345", "qty": 67890, "note": "bench row"}, 3)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := outbox.DecodeRowChange(m.Payload); err != nil {
			b.Fatal(err)
		}
	}
}
