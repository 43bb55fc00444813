package outbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Row-sync events replicate rows of a service's table into subscribers' tables without code on
// either side: the service writes RowUpsert/RowDelete messages with its change, and
// `syncworker consume` applies them to a mapped target table, version-guarded.
//
// The payload is JSON (content type application/json):
//
//	{"format":1,"op":"upsert","table":"orders","key":{"id":42},
//	 "row":{"id":42,"status":"paid","total":"12.50"},"version":7}
//
// format is RowSyncFormat; op is "upsert" or "delete" (a delete has no row); table and the
// column names are identifiers (ValidateIdentifier); key names the row (one or more columns,
// none null); row holds the new column values (key columns may repeat, with the same values);
// key and row each name a column once, however spelled (column names are case-insensitive);
// version increases with every change of the row (for example an updated_at in microseconds
// or a version column) and must be positive.
const (
	// RowSyncFormat is the payload format version this package writes and reads.
	RowSyncFormat = 1
	// EventTypeRowUpsert and EventTypeRowDelete are the AMQP type of row-sync events.
	EventTypeRowUpsert = "syncworker.row.upsert"
	EventTypeRowDelete = "syncworker.row.delete"
	// RowOpUpsert and RowOpDelete are the values of the payload's op field.
	RowOpUpsert = "upsert"
	RowOpDelete = "delete"
	// MaxRowKeyBytes bounds the canonical key text (RowChange.KeyString), which the
	// subscriber stores with the row's version.
	MaxRowKeyBytes = 512
)

// ErrInvalidRowChange is returned (wrapped, with the reason) for a row-sync event that cannot
// be built or decoded.
var ErrInvalidRowChange = errors.New("invalid row-sync event")

// RowChange is the payload of a row-sync event.
type RowChange struct {
	Format  int            `json:"format"`
	Op      string         `json:"op"`
	Table   string         `json:"table"`
	Key     map[string]any `json:"key"`
	Row     map[string]any `json:"row,omitempty"`
	Version uint64         `json:"version"`
}

// RowUpsert builds the event saying that row (identified by key) of table now has the given
// column values at version. Values must encode to JSON; time.Time values are written as
// "2006-01-02 15:04:05.999999" in UTC, which every MySQL temporal column accepts, and
// []byte as base64 (JSON's rule), so send binary columns pre-encoded as text. A DATETIME or
// DATE column gets that UTC wall clock, so read such columns with the driver's default
// loc=UTC (another location moves them); a TIMESTAMP column reads it in the subscriber
// session's time zone, which must be UTC (`syncworker consume` sets time_zone '+00:00' unless
// its DSN names one; elsewhere add time_zone=%27%2B00%3A00%27 to the DSN).
//
// The returned message has Type, AggregateType (the table), PartitionKey (table and key, so
// the changes of one row stay in order) and Payload set. The caller sets Exchange and
// RoutingKey (and may set ID, headers, ...) before passing it to Write.
func RowUpsert(table string, key, row map[string]any, version uint64) (Message, error) {
	return rowMessage(RowChange{Format: RowSyncFormat, Op: RowOpUpsert, Table: table,
		Key: normalizeValues(key), Row: normalizeValues(row), Version: version})
}

// RowDelete builds the event saying that the row of table identified by key was deleted at
// version. Subscribers keep the version as a tombstone, so a late upsert of an older version
// cannot bring the row back. See RowUpsert for the returned message.
func RowDelete(table string, key map[string]any, version uint64) (Message, error) {
	return rowMessage(RowChange{Format: RowSyncFormat, Op: RowOpDelete, Table: table,
		Key: normalizeValues(key), Version: version})
}

func rowMessage(c RowChange) (Message, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return Message{}, fmt.Errorf("%w: encode: %v", ErrInvalidRowChange, err)
	}
	// Validate what a subscriber will decode, so the two sides cannot disagree.
	decoded, err := DecodeRowChange(payload)
	if err != nil {
		return Message{}, err
	}
	keyText, _ := decoded.KeyString()
	eventType := EventTypeRowUpsert
	if c.Op == RowOpDelete {
		eventType = EventTypeRowDelete
	}
	return Message{
		Type:          eventType,
		AggregateType: c.Table,
		PartitionKey:  rowPartitionKey(c.Table, keyText),
		ContentType:   DefaultContentType,
		Payload:       payload,
	}, nil
}

// rowPartitionKey is "table:keytext", hashed when it would not fit an AMQP short string.
func rowPartitionKey(table, keyText string) string {
	pk := table + ":" + keyText
	if len(pk) <= maxShortString {
		return pk
	}
	sum := sha256.Sum256([]byte(keyText))
	return table + ":sha256:" + hex.EncodeToString(sum[:])
}

// sqlTimeLayout is accepted by DATETIME, TIMESTAMP and DATE columns alike.
const sqlTimeLayout = "2006-01-02 15:04:05.999999"

func normalizeValues(in map[string]any) map[string]any {
	if in == nil {
		return nil
	}
	out := make(map[string]any, len(in))
	for k, v := range in {
		switch t := v.(type) {
		case time.Time:
			out[k] = t.UTC().Format(sqlTimeLayout)
		case *time.Time:
			if t == nil {
				out[k] = nil
			} else {
				out[k] = t.UTC().Format(sqlTimeLayout)
			}
		default:
			out[k] = v
		}
	}
	return out
}

// DecodeRowChange parses and checks a row-sync payload. Numbers are kept as json.Number so
// large integers and decimals pass through exactly. Every error wraps ErrInvalidRowChange.
func DecodeRowChange(payload []byte) (RowChange, error) {
	var c RowChange
	// encoding/json would turn invalid UTF-8 into U+FFFD and so change the values silently.
	if !utf8.Valid(payload) {
		return RowChange{}, fmt.Errorf("%w: payload is not valid UTF-8", ErrInvalidRowChange)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return RowChange{}, fmt.Errorf("%w: %v", ErrInvalidRowChange, err)
	}
	if dec.More() {
		return RowChange{}, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidRowChange)
	}
	if err := c.validate(); err != nil {
		return RowChange{}, err
	}
	return c, nil
}

func (c RowChange) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidRowChange}, args...)...))
	}
	if c.Format != RowSyncFormat {
		bad("format %d is not supported (want %d)", c.Format, RowSyncFormat)
	}
	if err := ValidateIdentifier(c.Table); err != nil {
		bad("table: %v", err)
	}
	if c.Version == 0 {
		bad("version must be positive")
	}
	if len(c.Key) == 0 {
		bad("key must name at least one column")
	}
	// Column names are case-insensitive in MySQL: one column in two spellings would be
	// written with either value, whichever came last.
	keyNames := make(map[string]string, len(c.Key)) // lower-case name -> spelling
	for name, v := range c.Key {
		if err := ValidateIdentifier(name); err != nil {
			bad("key column: %v", err)
			continue
		}
		if v == nil {
			// NULLs never conflict in a unique key: every upsert would add a row, and a
			// delete (key = NULL) would match none.
			bad("key column %q is null (a key value must name one row)", name)
		}
		if other, dup := keyNames[strings.ToLower(name)]; dup {
			bad("key %s", spelledTwice(name, other))
		}
		keyNames[strings.ToLower(name)] = name
	}
	switch c.Op {
	case RowOpUpsert:
		if len(c.Row) == 0 {
			bad("an upsert needs a row")
		}
		rowNames := make(map[string]string, len(c.Row))
		for name, v := range c.Row {
			if err := ValidateIdentifier(name); err != nil {
				bad("row column: %v", err)
				continue
			}
			lower := strings.ToLower(name)
			if other, dup := rowNames[lower]; dup {
				bad("row %s", spelledTwice(name, other))
			}
			rowNames[lower] = name
			if keyName, isKey := keyNames[lower]; isKey && !sameJSON(c.Key[keyName], v) {
				bad("row column %q contradicts the key", name)
			}
		}
	case RowOpDelete:
		if len(c.Row) != 0 {
			bad("a delete carries no row")
		}
	default:
		bad("op %q (want %q or %q)", c.Op, RowOpUpsert, RowOpDelete)
	}
	if k, err := c.KeyString(); err != nil {
		bad("key: %v", err)
	} else if len(k) > MaxRowKeyBytes {
		bad("key is %d bytes, maximum %d", len(k), MaxRowKeyBytes)
	}
	return errors.Join(errs...)
}

// KeyString is the canonical text of the key: its JSON object with the columns sorted by
// name, and whole numbers written as integers (1.0, 1e0 and 100e-2 are all 1). It identifies
// the row in the subscriber's version table and, in the partition key, orders its changes.
// A string is never taken for a number: "1" and 1 are different keys, so every producer of a
// table's events must give a key column values of one JSON type.
func (c RowChange) KeyString() (string, error) {
	key, cloned := c.Key, false
	for col, v := range c.Key {
		n, ok := v.(json.Number)
		if !ok {
			continue
		}
		whole, ok := wholeNumber(string(n))
		if !ok || whole == string(n) {
			continue
		}
		if !cloned {
			key, cloned = maps.Clone(c.Key), true
		}
		key[col] = json.Number(whole)
	}
	b, err := json.Marshal(key) // encoding/json sorts map keys
	return string(b), err
}

// wholeNumber returns the integer text of the JSON number n when its value is a whole number:
// "1.0" -> "1", "-2.50e1" -> "-25", "-0.0" -> "0". Other numbers, and exponents beyond ±64
// (which no key column holds; it bounds the arithmetic), are not.
func wholeNumber(n string) (string, bool) {
	if !strings.ContainsAny(n, ".eE") {
		if n == "-0" {
			return "0", true
		}
		return n, true
	}
	if i := strings.IndexAny(n, "eE"); i >= 0 {
		exp, err := strconv.Atoi(strings.TrimPrefix(n[i+1:], "+"))
		if err != nil || exp < -64 || exp > 64 {
			return "", false
		}
	}
	r, ok := new(big.Rat).SetString(n)
	if !ok || !r.IsInt() {
		return "", false
	}
	return r.Num().String(), true
}

// spelledTwice says that two names are one column, in a stable order.
func spelledTwice(a, b string) string {
	if a > b {
		a, b = b, a
	}
	return fmt.Sprintf("names column %q twice (as %q and %q; column names are case-insensitive)", strings.ToLower(a), a, b)
}

func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}
