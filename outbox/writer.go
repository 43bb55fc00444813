package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Execer is what Write needs from the caller: a *sql.Tx, or a *sql.Conn or *sql.DB for
// callers who manage their transactions themselves.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Config configures a Writer. The zero value is valid and uses every default.
type Config struct {
	// Table is the outbox table. Default "syncworker_outbox".
	Table string
	// MaxPayloadBytes bounds one payload. Default 1 MiB; at most 16 MiB - 1 (MEDIUMBLOB).
	MaxPayloadBytes int
	// MaxHeaderBytes bounds the names and values of one message's headers together, so the
	// AMQP content header fits a frame. Default 64 KiB.
	MaxHeaderBytes int
	// MaxRowsPerStatement splits larger Write calls into several INSERTs. Default 500.
	MaxRowsPerStatement int
	// MaxStatementBytes splits a Write call whose payloads would make an INSERT larger than
	// this, to stay under the server's max_allowed_packet. Default 4 MiB.
	MaxStatementBytes int
	// TraceContext returns the W3C trace context to attach to messages written with ctx.
	// Default TraceContextFromContext; an OpenTelemetry user injects the span context here.
	TraceContext func(ctx context.Context) TraceContext
}

const (
	defaultMaxPayloadBytes     = 1 << 20
	maxMediumBlob              = 1<<24 - 1
	defaultMaxHeaderBytes      = 64 << 10
	defaultMaxRowsPerStatement = 500
	defaultMaxStatementBytes   = 4 << 20
	// maxPlaceholders is the MySQL limit on placeholders in one prepared statement.
	maxPlaceholders = 65535
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
	if c.MaxHeaderBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxHeaderBytes: %d is negative", c.MaxHeaderBytes))
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
// after any failed statement in its transaction.
func (w *Writer) Write(ctx context.Context, tx Execer, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	var problems []error
	for i := range msgs {
		problems = append(problems, w.validate(i, &msgs[i])...)
	}
	if len(problems) > 0 {
		return errors.Join(problems...)
	}
	trace := w.cfg.TraceContext(ctx)
	args := make([]any, 0, min(len(msgs), w.cfg.MaxRowsPerStatement)*len(insertColumns))
	rows, bytes := 0, 0
	for i := range msgs {
		size := len(msgs[i].Payload) + 512
		if rows > 0 && (rows == w.cfg.MaxRowsPerStatement || bytes+size > w.cfg.MaxStatementBytes) {
			if err := w.insert(ctx, tx, rows, args); err != nil {
				return err
			}
			args, rows, bytes = args[:0], 0, 0
		}
		var err error
		if args, err = w.appendRowArgs(args, &msgs[i], trace); err != nil {
			return fmt.Errorf("outbox: message %d: %w", i, err)
		}
		rows++
		bytes += size
	}
	return w.insert(ctx, tx, rows, args)
}

func (w *Writer) insert(ctx context.Context, tx Execer, rows int, args []any) error {
	var handled bool
	var err error
	if w.prepared != nil {
		handled, err = w.prepared.exec(ctx, tx, rows, args)
	}
	if !handled {
		_, err = tx.ExecContext(ctx, w.insertSQL(rows), args...)
	}
	if err != nil {
		return fmt.Errorf("outbox: insert %d messages into %s: %w", rows, w.cfg.Table, err)
	}
	return nil
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
// insertColumns order, applying the defaults the Message fields document.
func (w *Writer) appendRowArgs(args []any, m *Message, trace TraceContext) ([]any, error) {
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
	headers, err := encodeHeaders(m.Headers, trace)
	if err != nil {
		return nil, err
	}
	payload := m.Payload
	if payload == nil {
		payload = []byte{} // the column is NOT NULL; an empty payload is still a payload
	}
	return append(args,
		id, PartitionHash(partitionKey), exchange, m.RoutingKey, partitionKey, m.Type,
		m.AggregateType, contentType, m.CorrelationID, headers, payload,
	), nil
}

// encodeHeaders stores the user's headers and the trace context as a JSON object, or NULL
// when there are none. Validation guaranteed UTF-8, so JSON round-trips them exactly.
func encodeHeaders(h map[string]string, trace TraceContext) (any, error) {
	_, hasParent := h[HeaderTraceParent]
	// A malformed trace context is dropped rather than failing the business transaction.
	addTrace := trace.TraceParent != "" && !hasParent && isPlainText(trace.TraceParent) && isPlainText(trace.TraceState)
	if len(h) == 0 && !addTrace {
		return nil, nil
	}
	all := h
	if addTrace {
		all = make(map[string]string, len(h)+2)
		for k, v := range h {
			all[k] = v
		}
		all[HeaderTraceParent] = trace.TraceParent
		if trace.TraceState != "" {
			all[HeaderTraceState] = trace.TraceState
		}
	}
	b, err := json.Marshal(all)
	if err != nil {
		return nil, fmt.Errorf("encode headers: %w", err)
	}
	return b, nil
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
