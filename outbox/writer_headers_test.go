package outbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The headers limit applies to the headers as stored: the JSON object, escapes included,
// never more than the headers BLOB column holds.
func TestHeadersLimitIsTheStoredJSONSize(t *testing.T) {
	many := map[string]string{}
	for i := 0; i < 6000; i++ {
		many[fmt.Sprintf("h%05d", i)] = "1234" // 60,000 bytes of names and values, 96,001 as JSON
	}
	// One header "a" of n bytes that need no escaping is stored as {"a":"..."}: n+8 bytes.
	cases := []struct {
		name    string
		headers map[string]string
	}{
		{"quotes double in JSON", map[string]string{"a": strings.Repeat(`"`, 40000)}},
		{"control bytes become \\u00XX", map[string]string{"a": strings.Repeat("\x01", 12000)}},
		{"6000 small headers", many},
		{"one byte over the column", map[string]string{"a": strings.Repeat("v", maxHeadersColumn-8+1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Write(t.Context(), failingExecer{t}, Message{Exchange: "x"}, Message{Exchange: "x", Headers: tc.headers})
			var me *MessageError
			if !errors.Is(err, ErrHeadersTooLarge) || !errors.As(err, &me) || me.Index != 1 || me.Field != "Headers" {
				t.Fatalf("got %v, want a *MessageError for message 1, Headers, ErrHeadersTooLarge", err)
			}
		})
	}
	fits := []map[string]string{
		{"a": strings.Repeat("<", 12<<10)}, // was 6 bytes a character with HTML escaping
		{"a": strings.Repeat("&>", 10000), "b": "ü✓"},
		{"a": strings.Repeat("v", maxHeadersColumn-8)}, // exactly the column
	}
	for i, h := range fits {
		rec := &recordingExecer{}
		if err := Write(t.Context(), rec, Message{Exchange: "x", Headers: h}); err != nil {
			t.Fatalf("headers %d: %v", i, err)
		}
		stored := rec.args[0][9].([]byte)
		if len(stored) > maxHeadersColumn {
			t.Fatalf("headers %d: %d bytes stored, the column holds %d", i, len(stored), maxHeadersColumn)
		}
		got, err := DecodeHeaders(stored)
		if err != nil || len(got) != len(h) {
			t.Fatalf("headers %d: decoded %d headers (%v), want %d", i, len(got), err, len(h))
		}
		for k, v := range h {
			if got[k] != v {
				t.Fatalf("headers %d: %q changed", i, k)
			}
		}
	}
}

func TestHeadersLimitCountsTheTraceContext(t *testing.T) {
	w, err := New(Config{MaxHeaderBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{"a": strings.Repeat("v", 80)} // 88 bytes stored
	if err := w.Write(t.Context(), &recordingExecer{}, Message{Exchange: "x", Headers: h}); err != nil {
		t.Fatal(err)
	}
	ctx := ContextWithTraceContext(t.Context(), TraceContext{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	if err := w.Write(ctx, failingExecer{t}, Message{Exchange: "x", Headers: h}); !errors.Is(err, ErrHeadersTooLarge) {
		t.Fatalf("headers plus trace context over the limit: got %v, want ErrHeadersTooLarge", err)
	}
}

func TestConfigRefusesHeaderLimitAboveTheColumn(t *testing.T) {
	if _, err := New(Config{MaxHeaderBytes: maxHeadersColumn + 1}); err == nil || !strings.Contains(err.Error(), "MaxHeaderBytes") {
		t.Fatalf("MaxHeaderBytes above the column: got %v, want a config error", err)
	}
	if _, err := New(Config{MaxHeaderBytes: maxHeadersColumn}); err != nil {
		t.Fatal(err)
	}
}

// The stored form is what encoding/json writes without HTML escaping, byte for byte, and
// validation predicts its size exactly.
func TestEncodeHeadersMatchesEncodingJSON(t *testing.T) {
	trace := TraceContext{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: `v="1"`}
	for i, h := range []map[string]string{
		{"a": "plain"},
		{"<b>": "a&b<c>d", "q": `"quoted" \back\slash/`, "ctl": "\x00\x01\b\f\n\r\t\x1f\x7f", "u": "ü✓\u2028\u2029𝄞"},
		{"tracestate": "replaced", "z": "", "A": "upper"},
		{"traceparent": "mine", "tracestate": "kept"},
		{},
	} {
		for _, tc := range []TraceContext{{}, trace} {
			checkEncoding(t, fmt.Sprintf("case %d, trace %v", i, tc.TraceParent != ""), h, tc)
		}
	}
}

func FuzzEncodeHeaders(f *testing.F) {
	f.Add("k", "v", "k2", "<&>\"\\\x01\u2028")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		h := map[string]string{k1: v1, k2: v2}
		for k, v := range h {
			if headerNameProblem(k) != "" && k != HeaderTraceParent && k != HeaderTraceState || !isUTF8(v) {
				return
			}
		}
		checkEncoding(t, "fuzz", h, TraceContext{TraceParent: "p", TraceState: v2})
	})
}

func isUTF8(s string) bool { _, ok := jsonStringLen(s); return ok }

func checkEncoding(t *testing.T, name string, h map[string]string, tc TraceContext) {
	t.Helper()
	tr := newHeaderTrace(tc)
	add := tr.adds(h)
	want := map[string]string{}
	for k, v := range h {
		want[k] = v
	}
	if add {
		want[HeaderTraceParent] = tc.TraceParent
		if tc.TraceState != "" {
			want[HeaderTraceState] = tc.TraceState
		}
	}
	got := encodeHeaders(h, add, &tr)
	ok := true
	size := validateHeaders(h, add, &tr, func(_ string, err error, _ string) {
		if !errors.Is(err, ErrInvalidHeaderName) { // names are not what this checks
			ok = false
		}
	})
	if len(want) == 0 {
		if got != nil || size != 0 || !ok {
			t.Fatalf("%s: no headers encode as %q (size %d), want NULL", name, got, size)
		}
		return
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(want); err != nil {
		t.Fatal(err)
	}
	if wantBytes := bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !bytes.Equal(got, wantBytes) {
		t.Fatalf("%s: encoded\n%s\nencoding/json writes\n%s", name, got, wantBytes)
	}
	if !ok || size != len(got) {
		t.Fatalf("%s: validation predicts %d bytes (ok %v), encoded %d", name, size, ok, len(got))
	}
}

// Rows written before unescaped headers keep their \u003c forms; both decode the same.
func TestDecodeHeadersReadsEscapedAndUnescapedForms(t *testing.T) {
	for _, stored := range []string{`{"a":"\u003c\u0026\u003e"}`, `{"a":"<&>"}`} {
		h, err := DecodeHeaders([]byte(stored))
		if err != nil || h["a"] != "<&>" {
			t.Fatalf("DecodeHeaders(%s) = %v, %v", stored, h, err)
		}
	}
}
