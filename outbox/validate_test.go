package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestValidateReportsEachProblemWithIndexAndField(t *testing.T) {
	w, err := New(Config{MaxPayloadBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		msg   Message
		field string
		want  error
	}{
		{"missing exchange", Message{}, "Exchange", ErrMissingExchange},
		{"long routing key", Message{Exchange: "x", RoutingKey: strings.Repeat("k", 256)}, "RoutingKey", ErrFieldTooLong},
		{"long partition key", Message{Exchange: "x", PartitionKey: strings.Repeat("k", 256)}, "PartitionKey", ErrFieldTooLong},
		{"control char in type", Message{Exchange: "x", Type: "a\nb"}, "Type", ErrInvalidText},
		{"invalid utf8 id", Message{Exchange: "x", ID: "\xff"}, "ID", ErrInvalidText},
		{"payload too large", Message{Exchange: "x", Payload: make([]byte, 11)}, "Payload", ErrPayloadTooLarge},
		{"empty header name", Message{Exchange: "x", Headers: map[string]string{"": "v"}}, `Headers[""]`, ErrInvalidHeaderName},
		{"broker header", Message{Exchange: "x", Headers: map[string]string{"x-death": "v"}}, `Headers["x-death"]`, ErrInvalidHeaderName},
		{"reserved header", Message{Exchange: "x", Headers: map[string]string{"sw-attempt": "1"}}, `Headers["sw-attempt"]`, ErrInvalidHeaderName},
		{"long header name", Message{Exchange: "x", Headers: map[string]string{strings.Repeat("h", 129): "v"}}, "Headers", ErrInvalidHeaderName},
		{"invalid header value", Message{Exchange: "x", Headers: map[string]string{"h": "\xc3\x28"}}, `Headers["h"]`, ErrInvalidHeaderValue},
		{"headers too large", Message{Exchange: "x", Headers: map[string]string{"h": strings.Repeat("v", 70000)}}, "Headers", ErrHeadersTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msgs := []Message{{Exchange: "ok"}, tc.msg}
			err := w.Write(t.Context(), failingExecer{t}, msgs...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v is not %v", err, tc.want)
			}
			var me *MessageError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not a *MessageError", err)
			}
			if me.Index != 1 || !strings.HasPrefix(me.Field, tc.field) {
				t.Fatalf("MessageError names message %d field %q, want 1 and %q", me.Index, me.Field, tc.field)
			}
		})
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	err := Write(t.Context(), failingExecer{t},
		Message{RoutingKey: strings.Repeat("k", 300)},
		Message{Exchange: "x"},
		Message{Exchange: "x", Headers: map[string]string{"x-a": "1"}})
	for _, want := range []error{ErrMissingExchange, ErrFieldTooLong, ErrInvalidHeaderName} {
		if !errors.Is(err, want) {
			t.Errorf("joined error lacks %v: %v", want, err)
		}
	}
	if !strings.Contains(err.Error(), "message 0") || !strings.Contains(err.Error(), "message 2") {
		t.Errorf("error does not name both messages: %v", err)
	}
}

func TestDefaultExchangeAndEmptyCallsWriteNothingSurprising(t *testing.T) {
	if err := Write(t.Context(), failingExecer{t}); err != nil {
		t.Fatalf("empty Write: %v", err)
	}
	rec := &recordingExecer{}
	if err := Write(t.Context(), rec, Message{Exchange: DefaultExchange, RoutingKey: "q"}); err != nil {
		t.Fatal(err)
	}
	if len(rec.args) != 1 || rec.args[0][2] != "" {
		t.Fatalf("DefaultExchange should be stored as the empty name, got args %v", rec.args)
	}
}

func TestConfigValidateListsEveryProblem(t *testing.T) {
	_, err := New(Config{Table: "bad name", MaxPayloadBytes: 1 << 25, MaxRowsPerStatement: 100000, MaxHeaderBytes: -1})
	for _, want := range []string{"Table", "MaxPayloadBytes", "MaxRowsPerStatement", "MaxHeaderBytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config error does not mention %s: %v", want, err)
		}
	}
	if !errors.Is(err, ErrInvalidIdentifier) {
		t.Errorf("bad table name is not ErrInvalidIdentifier: %v", err)
	}
}

func TestWriteSplitsLargeCalls(t *testing.T) {
	w, err := New(Config{MaxRowsPerStatement: 3, MaxStatementBytes: 5000})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingExecer{}
	var msgs []Message
	for i := 0; i < 7; i++ {
		msgs = append(msgs, Message{Exchange: "x"})
	}
	msgs = append(msgs, Message{Exchange: "x", Payload: make([]byte, 3000)}, Message{Exchange: "x", Payload: make([]byte, 3000)})
	if err := w.Write(t.Context(), rec, msgs...); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, a := range rec.args {
		sizes = append(sizes, len(a)/len(insertColumns))
	}
	// 7 small rows in statements of at most 3, then the two 3000-byte payloads must not share
	// a 5000-byte statement with each other.
	want := []int{3, 3, 2, 1}
	if len(sizes) != len(want) {
		t.Fatalf("statement sizes %v, want %v", sizes, want)
	}
	for i := range want {
		if sizes[i] != want[i] {
			t.Fatalf("statement sizes %v, want %v", sizes, want)
		}
	}
}

func TestTraceContextGoesIntoHeaders(t *testing.T) {
	rec := &recordingExecer{}
	ctx := ContextWithTraceContext(t.Context(), TraceContext{
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: "v=1"})
	if err := Write(ctx, rec, Message{Exchange: "x", Headers: map[string]string{"tenant": "a"}}); err != nil {
		t.Fatal(err)
	}
	h, err := DecodeHeaders(rec.args[0][9].([]byte))
	if err != nil {
		t.Fatal(err)
	}
	if h[HeaderTraceParent] == "" || h[HeaderTraceState] != "v=1" || h["tenant"] != "a" {
		t.Fatalf("headers %v lack the trace context or the user's header", h)
	}
}

func TestPartitionRangesCoverTheHashSpaceAndAgreeWithPartitionOf(t *testing.T) {
	for _, n := range []int{1, 3, 7, 16, 1000} {
		next := uint64(0)
		for p := 0; p < n; p++ {
			lo, hi := PartitionRange(p, n)
			if uint64(lo) != next || hi < lo {
				t.Fatalf("n=%d p=%d: range [%d,%d] does not start at %d", n, p, lo, hi, next)
			}
			for _, h := range []uint32{lo, hi, lo + (hi-lo)/2} {
				if got := PartitionOf(h, n); got != p {
					t.Fatalf("n=%d: PartitionOf(%d) = %d, want %d", n, h, got, p)
				}
			}
			next = uint64(hi) + 1
		}
		if next != 1<<32 {
			t.Fatalf("n=%d: ranges end at %d, not 2^32", n, next)
		}
	}
}

func TestTablesValidate(t *testing.T) {
	if err := (Tables{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("default tables invalid: %v", err)
	}
	err := Tables{Outbox: "a", Dead: "A", Inbox: "x;drop"}.WithDefaults().Validate()
	if !errors.Is(err, ErrInvalidIdentifier) || !strings.Contains(err.Error(), "also used") {
		t.Fatalf("want invalid and duplicate name errors, got %v", err)
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- c;\nCREATE a (x);\n\n-- d\nCREATE b (\n y\n);\n")
	if len(got) != 2 || got[0] != "CREATE a (x)" || !strings.HasPrefix(got[1], "CREATE b") {
		t.Fatalf("splitStatements = %q", got)
	}
}

func TestValidateIdentifierAcceptsOnlyPlainASCIINames(t *testing.T) {
	valid := []string{"a", "Z", "_", "$", "_x", "$x", "a1", "A_Z$9", "orders", strings.Repeat("c", 64)}
	invalid := []string{"", "1a", "9", "a-b", "a b", "a.b", "a`b", "a'b", "a;b", "ä", "a\x00", "a\n",
		strings.Repeat("c", 65)}
	for _, name := range valid {
		if err := ValidateIdentifier(name); err != nil {
			t.Errorf("ValidateIdentifier(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range invalid {
		if err := ValidateIdentifier(name); !errors.Is(err, ErrInvalidIdentifier) {
			t.Errorf("ValidateIdentifier(%q) = %v, want ErrInvalidIdentifier", name, err)
		}
	}
}

// Every value a row carries counts towards MaxStatementBytes, not the payload alone.
func TestWriteSplitCountsEveryValueOfARow(t *testing.T) {
	const maxBytes = 200 << 10
	w, err := New(Config{MaxStatementBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("k", 255)
	var msgs []Message
	for i := 0; i < 20; i++ { // headers of 50 KiB, no payload
		msgs = append(msgs, Message{Exchange: "x", Headers: map[string]string{"h": strings.Repeat("v", 50<<10)}})
	}
	for i := 0; i < 200; i++ { // every name at its 255-byte limit, no payload
		msgs = append(msgs, Message{ID: fmt.Sprintf("%0255d", i), Exchange: long, RoutingKey: long, PartitionKey: long,
			Type: long, AggregateType: long, ContentType: long, CorrelationID: long})
	}
	rec := &recordingExecer{}
	if err := w.Write(t.Context(), rec, msgs...); err != nil {
		t.Fatal(err)
	}
	total := 0
	for s, args := range rec.args {
		rows, bytes := len(args)/len(insertColumns), 0
		for _, a := range args {
			switch v := a.(type) {
			case string:
				bytes += len(v)
			case []byte:
				bytes += len(v)
			}
		}
		if rows > 1 && bytes > maxBytes {
			t.Errorf("statement %d: %d rows carry %d bytes, over MaxStatementBytes %d", s, rows, bytes, maxBytes)
		}
		total += rows
	}
	if total != len(msgs) {
		t.Fatalf("%d rows written, want %d", total, len(msgs))
	}
}

func TestInsertErrorExplainsAPacketTooLarge(t *testing.T) {
	tooLarge := &mysql.MySQLError{Number: 1153, Message: "Got a packet bigger than 'max_allowed_packet' bytes"}
	for _, cause := range []error{tooLarge, mysql.ErrInvalidConn, fmt.Errorf("write tcp: %w", syscall.ECONNRESET)} {
		err := Write(t.Context(), errExecer{cause}, Message{Exchange: "x", Payload: make([]byte, 1000)})
		if !errors.Is(err, cause) || !strings.Contains(err.Error(), "max_allowed_packet") ||
			!strings.Contains(err.Error(), "about 1601 bytes") {
			t.Errorf("cause %v: error %v does not wrap it with a max_allowed_packet hint and the statement's size", cause, err)
		}
	}
	other := &mysql.MySQLError{Number: 1146, Message: "Table 'x' doesn't exist"}
	if err := Write(t.Context(), errExecer{other}, Message{Exchange: "x"}); strings.Contains(err.Error(), "max_allowed_packet") {
		t.Errorf("unrelated error got the hint: %v", err)
	}
}

// nthFailingExecer fails statement n (from 0) with err and accepts the others.
type nthFailingExecer struct {
	n, calls int
	err      error
}

func (e *nthFailingExecer) ExecContext(context.Context, string, ...any) (sql.Result, error) {
	e.calls++
	if e.calls-1 == e.n {
		return nil, e.err
	}
	return nil, nil
}

func TestInsertErrorNamesTheMessagesOfTheFailedStatement(t *testing.T) {
	msgs := make([]Message, 600)
	for i := range msgs {
		msgs[i] = Message{Exchange: "x"}
	}
	cause := &mysql.MySQLError{Number: 1406, Message: "Data too long for column 'routing_key' at row 51"}
	err := Write(t.Context(), &nthFailingExecer{n: 1, err: cause}, msgs...)
	if !errors.Is(err, cause) || !strings.Contains(err.Error(), "messages 500 to 599") ||
		!strings.Contains(err.Error(), "row 51 is message 550") {
		t.Fatalf("error %v does not name messages 500 to 599 and message 550", err)
	}
	err = Write(t.Context(), &nthFailingExecer{n: 0, err: errors.New("boom")}, Message{Exchange: "x"})
	if err == nil || !strings.Contains(err.Error(), "insert message 0 into") {
		t.Fatalf("error %v does not name message 0", err)
	}
}

func TestWriteRefusesARepeatedIDWithinOneCall(t *testing.T) {
	for _, n := range []int{4, 16, 17, 100} { // scanned, and (past 16) looked up in a map
		msgs := make([]Message, n)
		for i := range msgs {
			msgs[i] = Message{Exchange: "x", ID: fmt.Sprintf("id-%d", i)}
		}
		msgs[0].ID, msgs[1].ID = "", "" // generated IDs never collide
		msgs[n-1].ID = msgs[2].ID
		err := Write(t.Context(), failingExecer{t}, msgs...)
		var me *MessageError
		if !errors.Is(err, ErrDuplicateID) || !errors.As(err, &me) || me.Index != n-1 || me.Field != "ID" ||
			me.ID != msgs[2].ID || !strings.Contains(err.Error(), "message 2") {
			t.Fatalf("%d messages: got %v, want ErrDuplicateID for message %d naming message 2", n, err, n-1)
		}
		msgs[n-1].ID = "unique"
		if err := Write(t.Context(), &recordingExecer{}, msgs...); err != nil {
			t.Fatalf("%d messages with distinct or empty IDs: %v", n, err)
		}
	}
}
