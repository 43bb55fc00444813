package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestRowUpsertRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600))
	m, err := RowUpsert("orders", map[string]any{"id": 42}, map[string]any{"id": 42, "status": "paid", "at": at, "big": uint64(1) << 63}, 7)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != EventTypeRowUpsert || m.AggregateType != "orders" || m.PartitionKey != `orders:{"id":42}` {
		t.Fatalf("message = %+v", m)
	}
	c, err := DecodeRowChange(m.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if c.Op != RowOpUpsert || c.Version != 7 || c.Row["at"] != "2026-01-02 02:04:05.000006" ||
		c.Row["big"] != json.Number("9223372036854775808") {
		t.Fatalf("decoded = %+v", c)
	}
	d, err := RowDelete("orders", map[string]any{"id": 42}, 8)
	if err != nil || d.Type != EventTypeRowDelete || d.PartitionKey != m.PartitionKey {
		t.Fatalf("delete = %+v, %v", d, err)
	}
}

func TestRowChangeRejects(t *testing.T) {
	cases := map[string]string{
		"not json":        `{`,
		"format":          `{"format":2,"op":"delete","table":"t","key":{"id":1},"version":1}`,
		"bad table":       `{"format":1,"op":"delete","table":"t;drop","key":{"id":1},"version":1}`,
		"bad column":      `{"format":1,"op":"upsert","table":"t","key":{"id":1},"row":{"a b":1},"version":1}`,
		"no key":          `{"format":1,"op":"delete","table":"t","key":{},"version":1}`,
		"zero version":    `{"format":1,"op":"delete","table":"t","key":{"id":1},"version":0}`,
		"op":              `{"format":1,"op":"merge","table":"t","key":{"id":1},"version":1}`,
		"delete with row": `{"format":1,"op":"delete","table":"t","key":{"id":1},"row":{"x":1},"version":1}`,
		"contradiction":   `{"format":1,"op":"upsert","table":"t","key":{"id":1},"row":{"id":2},"version":1}`,
		"unknown field":   `{"format":1,"op":"delete","table":"t","key":{"id":1},"version":1,"extra":1}`,
		"long key":        `{"format":1,"op":"delete","table":"t","key":{"id":"` + strings.Repeat("x", 600) + `"},"version":1}`,
	}
	for name, payload := range cases {
		if _, err := DecodeRowChange([]byte(payload)); !errors.Is(err, ErrInvalidRowChange) {
			t.Errorf("%s: err = %v, want ErrInvalidRowChange", name, err)
		}
	}
	if _, err := RowUpsert("t", map[string]any{"id": 1}, nil, 1); !errors.Is(err, ErrInvalidRowChange) {
		t.Errorf("upsert without row: err = %v", err)
	}
}

// A key names the row however its numbers are spelled: the version guard and the ordering
// must not take 1.0 for another row than 1. Strings stay strings.
func TestKeyStringWritesWholeNumbersAsIntegers(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{`{"id":1}`, `{"id":1}`},
		{`{"id":1.0}`, `{"id":1}`},
		{`{"id":1e0}`, `{"id":1}`},
		{`{"id":100e-2}`, `{"id":1}`},
		{`{"id":-2.50E1}`, `{"id":-25}`},
		{`{"id":-0.0}`, `{"id":0}`},
		{`{"id":-0}`, `{"id":0}`},
		{`{"id":12345678901234567890.000}`, `{"id":12345678901234567890}`},
		{`{"id":1.5}`, `{"id":1.5}`},     // not whole: as written
		{`{"id":1e400}`, `{"id":1e400}`}, // beyond any key column: as written
		{`{"id":"1.0"}`, `{"id":"1.0"}`}, // a string is a string
		{`{"a":2.0,"b":"x"}`, `{"a":2,"b":"x"}`},
	} {
		payload := `{"format":1,"op":"delete","table":"t","key":` + tc.key + `,"version":1}`
		c, err := DecodeRowChange([]byte(payload))
		if err != nil {
			t.Fatalf("%s: %v", tc.key, err)
		}
		before := fmt.Sprint(c.Key)
		got, err := c.KeyString()
		if err != nil || got != tc.want {
			t.Errorf("KeyString(%s) = %s, %v; want %s", tc.key, got, err, tc.want)
		}
		if after := fmt.Sprint(c.Key); after != before {
			t.Errorf("KeyString changed the decoded key %s to %s", before, after)
		}
	}
}

// A NULL key value names no row: NULLs never conflict in a unique key, so every upsert would
// insert another row and a delete would match nothing. Builders and decoding refuse it.
func TestRowChangeRejectsNullKeyValues(t *testing.T) {
	for name, payload := range map[string]string{
		"upsert": `{"format":1,"op":"upsert","table":"t","key":{"a":1,"b":null},"row":{"x":1},"version":1}`,
		"delete": `{"format":1,"op":"delete","table":"t","key":{"a":null},"version":1}`,
	} {
		_, err := DecodeRowChange([]byte(payload))
		if !errors.Is(err, ErrInvalidRowChange) || !strings.Contains(err.Error(), "null") {
			t.Errorf("%s with a null key value: err = %v, want ErrInvalidRowChange naming the null", name, err)
		}
	}
	var noTime *time.Time
	for name, build := range map[string]func() (Message, error){
		"RowUpsert": func() (Message, error) {
			return RowUpsert("t", map[string]any{"a": 1, "b": nil}, map[string]any{"x": 1}, 1)
		},
		"RowDelete":           func() (Message, error) { return RowDelete("t", map[string]any{"a": nil}, 1) },
		"RowDelete nil *Time": func() (Message, error) { return RowDelete("t", map[string]any{"at": noTime}, 1) },
	} {
		if _, err := build(); !errors.Is(err, ErrInvalidRowChange) || !strings.Contains(err.Error(), `key column "`) {
			t.Errorf("%s with a null key value: err = %v, want ErrInvalidRowChange", name, err)
		}
	}
	// A null in the row is a value like any other.
	if _, err := RowUpsert("t", map[string]any{"a": 1}, map[string]any{"x": nil}, 1); err != nil {
		t.Errorf("null row value: %v", err)
	}
}

// MySQL column names are case-insensitive: a row or key naming one column in two spellings
// would write one of the two values at random, and a row column spelled unlike the key's must
// agree with the key.
func TestRowChangeRejectsColumnSpelledTwice(t *testing.T) {
	for name, tc := range map[string]struct{ payload, reason string }{
		"row":         {`{"format":1,"op":"upsert","table":"t","key":{"id":1},"row":{"status":"lower","Status":"upper"},"version":1}`, `names column "status" twice`},
		"key":         {`{"format":1,"op":"delete","table":"t","key":{"id":1,"ID":2},"version":1}`, `names column "id" twice`},
		"key and row": {`{"format":1,"op":"upsert","table":"t","key":{"id":1},"row":{"ID":2},"version":1}`, `row column "ID" contradicts the key`},
	} {
		_, err := DecodeRowChange([]byte(tc.payload))
		if !errors.Is(err, ErrInvalidRowChange) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: err = %v, want ErrInvalidRowChange mentioning %q", name, err, tc.reason)
		}
	}
	if _, err := RowUpsert("t", map[string]any{"id": 1}, map[string]any{"status": "a", "STATUS": "b"}, 1); !errors.Is(err, ErrInvalidRowChange) {
		t.Errorf("RowUpsert with a column in two spellings: err = %v", err)
	}
	// The key's column repeated in the row with the same value, in another spelling, is fine.
	if _, err := RowUpsert("t", map[string]any{"id": 1}, map[string]any{"ID": 1, "x": 2}, 1); err != nil {
		t.Errorf("key column repeated in the row as ID: %v", err)
	}
}
