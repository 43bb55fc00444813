package outbox

import (
	"database/sql"
	"strings"
	"time"
)

// pendingCols is what the relay reads of a row to publish it; pendingScanner reads them.
const pendingCols = `id, partition_hash, message_id, exchange_name, routing_key, partition_key, event_type, aggregate_type,
  content_type, correlation_id, headers, payload, UNIX_TIMESTAMP(created_at), attempts,
  TIMESTAMPDIFF(MICROSECOND, NOW(6), next_attempt_at), TIMESTAMPDIFF(MICROSECOND, created_at, NOW(6))`

// The text columns of pendingCols, in their order.
const (
	colMessageID = iota
	colExchange
	colRoutingKey
	colPartitionKey
	colType
	colAggregateType
	colContentType
	colCorrelationID
	numTextCols
)

// pendingScanner reads rows of pendingCols. Scanned into strings and slices, database/sql
// copies every column into an allocation of its own, ten per row, which the relay paid for
// every message it published. The scanner takes the columns as sql.RawBytes (no copy) into
// destinations it reuses, and a row it keeps gets two allocations: one string holding its
// eight names and ids, one slice holding its headers and payload. Rows it skips (waiting for
// their retry) cost none.
type pendingScanner struct {
	id               int64
	hash             uint32
	text             [numTextCols]sql.RawBytes
	headers, payload sql.RawBytes // headers is nil when the column is NULL
	created          sql.RawBytes // UNIX_TIMESTAMP(created_at)
	attempts         int
	waitUS, ageUS    sql.NullInt64
	dest             []any
}

func newPendingScanner() *pendingScanner {
	s := &pendingScanner{}
	s.dest = []any{&s.id, &s.hash}
	for i := range s.text {
		s.dest = append(s.dest, &s.text[i])
	}
	s.dest = append(s.dest, &s.headers, &s.payload, &s.created, &s.attempts, &s.waitUS, &s.ageUS)
	return s
}

// scan reads the current row. What it read stays valid until the next call of rows.Next.
func (s *pendingScanner) scan(rows *sql.Rows) error { return rows.Scan(s.dest...) }

// wait is how long the row still waits for its next attempt (0 when it is ready).
func (s *pendingScanner) wait() time.Duration {
	if s.waitUS.Valid && s.waitUS.Int64 > 0 {
		return time.Duration(s.waitUS.Int64) * time.Microsecond
	}
	return 0
}

// partitionKey is the row's key as read, valid until the next scan.
func (s *pendingScanner) partitionKey() []byte { return s.text[colPartitionKey] }

// row copies the scanned row out. readAt is when the query started: the row's WrittenAt is its
// age on the database clock subtracted from it.
func (s *pendingScanner) row(readAt time.Time) PendingRow {
	size := 0
	for _, t := range s.text {
		size += len(t)
	}
	var b strings.Builder
	b.Grow(size)
	for _, t := range s.text {
		b.Write(t)
	}
	all := b.String()
	var field [numTextCols]string
	at := 0
	for i, t := range s.text {
		field[i] = all[at : at+len(t)]
		at += len(t)
	}
	r := PendingRow{
		ID: s.id, PartitionHash: s.hash, MessageID: field[colMessageID], Exchange: field[colExchange],
		RoutingKey: field[colRoutingKey], PartitionKey: field[colPartitionKey], Type: field[colType],
		AggregateType: field[colAggregateType], ContentType: field[colContentType],
		CorrelationID: field[colCorrelationID],
		CreatedAt:     parseUnixTime(s.created),
		Attempts:      s.attempts,
		WrittenAt:     readAt.Add(-time.Duration(max(s.ageUS.Int64, 0)) * time.Microsecond),
	}
	data := make([]byte, len(s.headers)+len(s.payload))
	n := copy(data, s.headers)
	copy(data[n:], s.payload)
	if s.headers != nil {
		r.Headers = data[:n:n] // capped: appending to the headers cannot overwrite the payload
	}
	r.Payload = data[n:]
	return r
}

// parseUnixTime reads UNIX_TIMESTAMP(...) output such as "1700000000.123456"; anything else is
// the zero time.
func parseUnixTime[T ~string | ~[]byte](s T) time.Time {
	var secs, nanos int64
	i := 0
	for ; i < len(s) && s[i] != '.'; i++ {
		d := s[i] - '0'
		if d > 9 || i >= 18 {
			return time.Time{}
		}
		secs = secs*10 + int64(d)
	}
	if i == 0 {
		return time.Time{}
	}
	for scale := int64(1e8); i+1 < len(s) && scale > 0; scale /= 10 {
		i++
		d := s[i] - '0'
		if d > 9 {
			break
		}
		nanos += int64(d) * scale
	}
	return time.Unix(secs, nanos)
}
