package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
)

// Execer is what Write needs from the caller: a *sql.Tx, or a *sql.Conn or *sql.DB for
// callers who manage their transactions themselves. Only a transaction makes a Write that
// is split into several INSERTs atomic; see Writer.Write.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Config configures a Writer. The zero value is valid and uses every default.
type Config struct {
	// Table is the outbox table. Default "syncworker_outbox".
	Table string
	// MaxPayloadBytes bounds one payload. Default 1 MiB; at most 16 MiB - 1 (MEDIUMBLOB).
	//
	// A message always travels whole in one INSERT, so a message bigger than the server's
	// max_allowed_packet can never be written: the server closes the connection and the
	// caller's transaction is lost. With go-sql-driver/mysql and interpolateParams the
	// driver escapes values into the statement text, up to doubling them, so keep
	// 2 * (MaxPayloadBytes + MaxHeaderBytes) + 64 KiB under max_allowed_packet (the
	// defaults need about 2.2 MiB; MariaDB's default is 16 MiB, MySQL 8's 64 MiB), or
	// add maxAllowedPacket=0 to the DSN: the driver then reads the server's limit once per
	// connection and sends a statement that would exceed it as a prepared statement, its
	// large values in packets of their own, so any message up to these limits fits.
	MaxPayloadBytes int
	// MaxHeaderBytes bounds one message's headers as stored: the JSON object of their names
	// and values, escapes included, with the trace context Write adds. Default and maximum
	// 65535, what the headers column (BLOB) holds; an AMQP header table that size fits
	// RabbitMQ's default frame (128 KiB) with room for the message's properties.
	MaxHeaderBytes int
	// MaxRowsPerStatement splits larger Write calls into several INSERTs. Default 500.
	MaxRowsPerStatement int
	// MaxStatementBytes splits a Write call whose rows would make an INSERT larger than this,
	// to stay under the server's max_allowed_packet. A row counts every value it carries
	// (id, names, keys, properties, headers as stored, payload) plus 512 bytes; a row larger
	// than this goes in a statement of its own. With interpolateParams a statement can be
	// up to twice this on the wire (see MaxPayloadBytes), so keep 2 * MaxStatementBytes +
	// 64 KiB under max_allowed_packet. Default 4 MiB: at most about 8 MiB sent, under the
	// default max_allowed_packet of MariaDB (16 MiB) and MySQL 8 (64 MiB).
	MaxStatementBytes int
	// TraceContext returns the W3C trace context to attach to messages written with ctx.
	// Default TraceContextFromContext; an OpenTelemetry user injects the span context here.
	TraceContext func(ctx context.Context) TraceContext
}

const (
	defaultMaxPayloadBytes     = 1 << 20
	maxMediumBlob              = 1<<24 - 1
	defaultMaxHeaderBytes      = maxHeadersColumn
	defaultMaxRowsPerStatement = 500
	defaultMaxStatementBytes   = 4 << 20
	// maxPlaceholders is the MySQL limit on placeholders in one prepared statement.
	maxPlaceholders = 65535
	// rowOverhead is what a row adds to a statement beyond its values: the partition hash
	// (up to 10 digits) and, with interpolateParams, each value's quotes or _binary''
	// prefix and the separators (about 80 bytes together), with room to spare.
	rowOverhead = 512
	// errPacketTooLarge is the MySQL error of a statement over max_allowed_packet, after
	// which the server closes the connection.
	errPacketTooLarge = 1153
)

func (c *Config) setDefaults() {
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = defaultMaxPayloadBytes
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if c.MaxRowsPerStatement == 0 {
		c.MaxRowsPerStatement = defaultMaxRowsPerStatement
	}
	if c.MaxStatementBytes == 0 {
		c.MaxStatementBytes = defaultMaxStatementBytes
	}
	if c.TraceContext == nil {
		c.TraceContext = TraceContextFromContext
	}
}

// Validate returns every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if err := ValidateIdentifier(c.Table); err != nil {
		errs = append(errs, fmt.Errorf("Table: %w", err))
	}
	if c.MaxPayloadBytes < 0 || c.MaxPayloadBytes > maxMediumBlob {
		errs = append(errs, fmt.Errorf("MaxPayloadBytes: %d is outside 1..%d", c.MaxPayloadBytes, maxMediumBlob))
	}
	if c.MaxHeaderBytes < 0 || c.MaxHeaderBytes > maxHeadersColumn {
		errs = append(errs, fmt.Errorf("MaxHeaderBytes: %d is outside 1..%d (the headers column)", c.MaxHeaderBytes, maxHeadersColumn))
	}
	if c.MaxRowsPerStatement < 0 || c.MaxRowsPerStatement*len(insertColumns) > maxPlaceholders {
		errs = append(errs, fmt.Errorf("MaxRowsPerStatement: %d is outside 1..%d", c.MaxRowsPerStatement,
			maxPlaceholders/len(insertColumns)))
	}
	if c.MaxStatementBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxStatementBytes: %d is negative", c.MaxStatementBytes))
	}
	return errors.Join(errs...)
}

// Writer writes messages into one outbox table. It is safe for concurrent use.
type Writer struct {
	cfg         Config
	insertHead  string // "INSERT INTO `table` (...) VALUES "
	placeholder string // "(?,?,...)"
	// smallInserts[n] is the INSERT of n rows for n up to MaxPreparedRows, built once.
	smallInserts [MaxPreparedRows + 1]string
	prepared     *preparedInserts // nil unless made by NewPrepared
}

// insertColumns are the columns Write fills; the rest take their defaults.
var insertColumns = []string{
	"message_id", "partition_hash", "exchange_name", "routing_key", "partition_key", "event_type",
	"aggregate_type", "content_type", "correlation_id", "headers", "payload",
}

// New returns a Writer for cfg, or every problem with cfg.
func New(cfg Config) (*Writer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("outbox: invalid config: %w", err)
	}
	w := &Writer{
		cfg:         cfg,
		insertHead:  "INSERT INTO " + QuoteIdentifier(cfg.Table) + " (" + strings.Join(insertColumns, ", ") + ") VALUES ",
		placeholder: "(" + strings.TrimSuffix(strings.Repeat("?,", len(insertColumns)), ",") + ")",
	}
	for rows := 1; rows <= MaxPreparedRows; rows++ {
		w.smallInserts[rows] = w.buildInsert(rows)
	}
	return w, nil
}

var defaultWriter = func() *Writer {
	w, err := New(Config{})
	if err != nil {
		panic(err)
	}
	return w
}()

// Write writes msgs into the default outbox table with the default limits. See Writer.Write.
func Write(ctx context.Context, tx Execer, msgs ...Message) error {
	return defaultWriter.Write(ctx, tx, msgs...)
}

// Write validates msgs and inserts them into the outbox with one multi-row INSERT (several
// when the call exceeds MaxRowsPerStatement or MaxStatementBytes) through tx. It never begins,
// commits or rolls back: the messages become visible to the relay when the caller commits.
//
// If any message is invalid, nothing is written and the error joins one *MessageError per
// problem; tx stays usable. If the database returns an error, the caller should roll back, as
// after any failed statement in its transaction. The error names the messages (indexes in
// msgs) of the failed INSERT and, when MySQL names a row ("at row N"), that row's message.
//
// Only a *sql.Tx (or a transaction begun on a *sql.Conn) makes a split call atomic. Through
// a *sql.DB, or a *sql.Conn in autocommit mode, each INSERT commits on its own: when a
// later INSERT fails, the messages before the ones its error names stay written.
func (w *Writer) Write(ctx context.Context, tx Execer, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	trace := newHeaderTrace(w.cfg.TraceContext(ctx))
	var problems []error
	var ids idSet
	for i := range msgs {
		problems = append(problems, w.validate(i, &msgs[i], &trace)...)
		if j, dup := ids.add(msgs, i); dup {
			problems = append(problems, &MessageError{Index: i, ID: msgs[i].ID, Field: "ID", Err: ErrDuplicateID,
				Detail: fmt.Sprintf("same as message %d", j)})
		}
	}
	if len(problems) > 0 {
		return errors.Join(problems...)
	}
	// Room for one row more than a statement holds: a row is appended before it is known
	// whether it starts the next statement.
	args := make([]any, 0, min(len(msgs), w.cfg.MaxRowsPerStatement+1)*len(insertColumns))
	first, rows, bytes := 0, 0, 0 // the statement being built: msgs[first:first+rows]
	for i := range msgs {
		var size int
		args, size = w.appendRowArgs(args, &msgs[i], &trace)
		if rows > 0 && (rows == w.cfg.MaxRowsPerStatement || bytes+size > w.cfg.MaxStatementBytes) {
			n := rows * len(insertColumns)
			if err := w.insert(ctx, tx, first, rows, bytes, args[:n]); err != nil {
				return err
			}
			args = append(args[:0], args[n:]...) // row i starts the next statement
			first, rows, bytes = i, 0, 0
		}
		rows++
		bytes += size
	}
	return w.insert(ctx, tx, first, rows, bytes, args)
}

// insert executes the INSERT of messages first to first+rows-1, whose values (and
// rowOverhead each) add up to bytes.
func (w *Writer) insert(ctx context.Context, tx Execer, first, rows, bytes int, args []any) error {
	var handled bool
	var err error
	if w.prepared != nil {
		handled, err = w.prepared.exec(ctx, tx, rows, args)
	}
	if !handled {
		_, err = tx.ExecContext(ctx, w.insertSQL(rows), args...)
	}
	if err != nil {
		return w.insertError(first, rows, bytes, err)
	}
	return nil
}

// insertError names the messages of a failed INSERT, and the one MySQL names ("at row N",
// counted from 1 in the statement) when it does.
func (w *Writer) insertError(first, rows, bytes int, err error) error {
	which := fmt.Sprintf("message %d", first)
	if rows > 1 {
		which = fmt.Sprintf("messages %d to %d", first, first+rows-1)
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		if at := strings.LastIndex(me.Message, " at row "); at >= 0 {
			if row, convErr := strconv.Atoi(me.Message[at+len(" at row "):]); convErr == nil && row >= 1 && row <= rows {
				which += fmt.Sprintf(" (MySQL's row %d is message %d)", row, first+row-1)
			}
		}
	}
	return fmt.Errorf("outbox: insert %s into %s%s: %w", which, w.cfg.Table, packetHint(err, bytes), err)
}

// packetHint explains an error that a statement over the server's max_allowed_packet
// causes: the server refuses it (1153) and closes the connection, or the driver refuses it,
// or the connection is simply reset mid-statement.
func packetHint(err error, bytes int) string {
	var me *mysql.MySQLError
	if !(errors.As(err, &me) && me.Number == errPacketTooLarge) && !errors.Is(err, mysql.ErrPktTooLarge) &&
		!errors.Is(err, mysql.ErrInvalidConn) && !errors.Is(err, driver.ErrBadConn) &&
		!errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		return ""
	}
	return fmt.Sprintf(" (the statement carried about %d bytes, up to twice that with interpolateParams; "+
		"a statement over the server's max_allowed_packet makes it close the connection: see Config.MaxStatementBytes "+
		"and MaxPayloadBytes)", bytes)
}

// insertSQL returns the INSERT statement of rows rows.
func (w *Writer) insertSQL(rows int) string {
	if rows <= MaxPreparedRows {
		return w.smallInserts[rows]
	}
	return w.buildInsert(rows)
}

func (w *Writer) buildInsert(rows int) string {
	var b strings.Builder
	b.Grow(len(w.insertHead) + rows*(len(w.placeholder)+1))
	b.WriteString(w.insertHead)
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(w.placeholder)
	}
	return b.String()
}

// appendRowArgs appends the INSERT arguments of one validated message to args, in
// insertColumns order, applying the defaults the Message fields document, and returns the
// size the row adds to a statement: its values plus rowOverhead.
func (w *Writer) appendRowArgs(args []any, m *Message, trace *headerTrace) ([]any, int) {
	id := m.ID
	if id == "" {
		id = NewID()
	}
	exchange := m.Exchange
	if exchange == DefaultExchange {
		exchange = ""
	}
	partitionKey := m.PartitionKey
	if partitionKey == "" {
		partitionKey = id
	}
	contentType := m.ContentType
	if contentType == "" {
		contentType = DefaultContentType
	}
	var headers any // NULL unless there are headers; a nil []byte would be an empty BLOB
	h := encodeHeaders(m.Headers, trace.adds(m.Headers), trace)
	if h != nil {
		headers = h
	}
	payload := m.Payload
	if payload == nil {
		payload = []byte{} // the column is NOT NULL; an empty payload is still a payload
	}
	return append(args,
			id, PartitionHash(partitionKey), exchange, m.RoutingKey, partitionKey, m.Type,
			m.AggregateType, contentType, m.CorrelationID, headers, payload,
		), len(id) + len(exchange) + len(m.RoutingKey) + len(partitionKey) + len(m.Type) + len(m.AggregateType) +
			len(contentType) + len(m.CorrelationID) + len(h) + len(payload) + rowOverhead
}

// maxHeadersColumn is the size of the headers column (BLOB): the largest headers object a
// row can hold.
const maxHeadersColumn = 1<<16 - 1

// The headers column holds a JSON object of the message's headers, written by encodeHeaders
// exactly as encoding/json writes a map[string]string without HTML escaping (keys sorted,
// <, > and & unescaped), so validation can predict its size from the strings alone, before
// any SQL. Rows written by earlier versions (with \u003c forms) decode the same.

// headerTrace is the trace context Write adds to the headers of one call's messages.
type headerTrace struct {
	ok            bool   // a well-formed trace context is present
	parent, state string // the traceparent and tracestate values
	size          int    // the bytes its entries add to a headers object, commas included
	entries       int
}

// newHeaderTrace checks tc once per Write. A malformed trace context is dropped rather than
// failing the business transaction.
func newHeaderTrace(tc TraceContext) headerTrace {
	if tc.TraceParent == "" || !isPlainText(tc.TraceParent) || !isPlainText(tc.TraceState) {
		return headerTrace{}
	}
	t := headerTrace{ok: true, parent: tc.TraceParent, state: tc.TraceState, entries: 1}
	t.size = entrySize(HeaderTraceParent, tc.TraceParent) + 1
	if tc.TraceState != "" {
		t.entries++
		t.size += entrySize(HeaderTraceState, tc.TraceState) + 1
	}
	return t
}

// adds reports whether the trace context goes into headers h: a caller's own traceparent
// wins. When it is added with a tracestate, that replaces the caller's tracestate.
func (t *headerTrace) adds(h map[string]string) bool {
	if !t.ok {
		return false
	}
	_, has := h[HeaderTraceParent]
	return !has
}

// replaces reports whether the caller's header name is replaced by the added trace context.
func (t *headerTrace) replaces(add bool, name string) bool {
	return add && t.state != "" && name == HeaderTraceState
}

// appendJSONString appends s (valid UTF-8) as a JSON string without HTML escaping, as
// encoding/json does with SetEscapeHTML(false).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			start = i + size
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// encodeHeaders returns the headers column of one validated message: its headers and, when
// add, the trace context, as a JSON object with sorted keys; nil (NULL) when there are none.
func encodeHeaders(h map[string]string, add bool, t *headerTrace) []byte {
	if len(h) == 0 && !add {
		return nil
	}
	var keyBuf [8]string
	keys := keyBuf[:0]
	size := 2 // the braces; escapes may add to it, then append grows the buffer once
	for k, v := range h {
		if !t.replaces(add, k) {
			keys = append(keys, k)
			size += len(k) + len(v) + 6
		}
	}
	if add {
		keys = append(keys, HeaderTraceParent)
		if t.state != "" {
			keys = append(keys, HeaderTraceState)
		}
		size += t.size
	}
	slices.Sort(keys)
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		v := h[k]
		if add && k == HeaderTraceParent {
			v = t.parent
		} else if t.replaces(add, k) {
			v = t.state
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, v)
	}
	return append(b, '}')
}

// DecodeHeaders reads the headers column written by Write. NULL or empty gives nil.
func DecodeHeaders(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var h map[string]string
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("outbox: decode headers: %w", err)
	}
	return h, nil
}
