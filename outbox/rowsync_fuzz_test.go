package outbox

import (
	"encoding/json"
	"errors"
	"testing"
)

// Any payload decodes to a valid change or fails with ErrInvalidRowChange; a decoded change
// has only valid identifiers and a bounded key, and encodes back to a payload that decodes
// the same way.
func FuzzDecodeRowChange(f *testing.F) {
	f.Add([]byte(`{"format":1,"op":"upsert","table":"orders","key":{"id":42},"row":{"status":"paid"},"version":7}`))
	f.Add([]byte(`{"format":1,"op":"delete","table":"orders","key":{"id":42},"version":8}`))
	f.Add([]byte(`{"format":1,"op":"upsert","table":"x; DROP TABLE y","key":{"a` + "`" + `b":1},"row":{"col) VALUES (1); --":1},"version":1}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := DecodeRowChange(payload)
		if err != nil {
			if !errors.Is(err, ErrInvalidRowChange) {
				t.Fatalf("error does not wrap ErrInvalidRowChange: %v", err)
			}
			return
		}
		if ValidateIdentifier(c.Table) != nil || c.Version == 0 {
			t.Fatalf("accepted %+v", c)
		}
		for name := range c.Key {
			if ValidateIdentifier(name) != nil {
				t.Fatalf("accepted key column %q", name)
			}
		}
		for name := range c.Row {
			if ValidateIdentifier(name) != nil {
				t.Fatalf("accepted row column %q", name)
			}
		}
		if k, err := c.KeyString(); err != nil || len(k) > MaxRowKeyBytes {
			t.Fatalf("key %q: %v", k, err)
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeRowChange(again); err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", again, err)
		}
	})
}
