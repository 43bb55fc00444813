package topology

import (
	"errors"
	"os"
	"testing"
)

// Any YAML parses to a topology that validates, or fails with ErrInvalid; never a panic.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../examples/topology.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("exchanges:\n  - name: a\n    type: topic\nqueues:\n  - name: q\n    retry:\n      delays: [1s]\nbindings:\n  - exchange: a\n    queue: q\n    routing_key: 'a.#'\n"))
	f.Add([]byte("queues: [{name: &a x, retry: *a}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		top, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error is not ErrInvalid: %v", err)
			}
			return
		}
		if err := top.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate refuses: %v", err)
		}
		top.declarations()
	})
}
