package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RelayStore holds the SQL the relay (package publisher) runs against the outbox: reading a
// partition, deleting confirmed rows, and the bookkeeping of failed publishes. It is safe for
// concurrent use.
//
// The relay never keeps a "last id" watermark across sweeps: every Fetch reads its partition
// from the start of its hash range, so a row whose transaction commits after rows with higher
// ids were already published is found by the next sweep (promise 4).
type RelayStore struct {
	db     *sql.DB
	tables Tables

	fetchFirst, fetchNext string
	fetchWith             string // the fetch with a slot for more conditions (%s), for Skip
	deleteHead            string
	failHead              string
	deadInsertHead        string
	watch, rangesHead     string
	stats                 string
}

// NewRelayStore returns the relay's queries on db for the given table names (empty names take
// their defaults).
func NewRelayStore(db *sql.DB, tables Tables) (*RelayStore, error) {
	if db == nil {
		return nil, errors.New("outbox: relay store: db is nil")
	}
	tables = tables.WithDefaults()
	if err := tables.Validate(); err != nil {
		return nil, fmt.Errorf("outbox: relay store: %w", err)
	}
	// Both forms walk ix_partition (partition_hash, id) in order: no filesort, no extra index.
	// The index is forced: on a small table (the outbox near empty, as it is when the relay
	// keeps up) the optimizer otherwise prefers a full scan and a filesort, which costs the
	// server several times more on every sweep and grows with the rows not yet purged.
	fetch := "SELECT " + pendingCols + " FROM {outbox} FORCE INDEX (ix_partition) WHERE partition_hash BETWEEN ? AND ? %s ORDER BY partition_hash, id LIMIT ?"
	s := &RelayStore{db: db, tables: tables}
	s.fetchFirst = tables.expand(fmt.Sprintf(fetch, ""))
	s.fetchNext = tables.expand(fmt.Sprintf(fetch, fetchAfter))
	s.fetchWith = tables.expand(fetch)
	s.deleteHead = tables.expand("DELETE FROM {outbox} WHERE id IN ")
	s.failHead = tables.expand(`UPDATE {outbox} SET attempts = attempts + 1,
  next_attempt_at = NOW(6) + INTERVAL ? MICROSECOND, last_error = ? WHERE id IN `)
	s.deadInsertHead = tables.expand(`INSERT INTO {outbox_dead} (outbox_id, partition_hash, message_id, exchange_name,
  routing_key, partition_key, event_type, aggregate_type, content_type, correlation_id, headers, payload,
  created_at, attempts, last_error)
SELECT id, partition_hash, message_id, exchange_name, routing_key, partition_key, event_type, aggregate_type,
  content_type, correlation_id, headers, payload, created_at, attempts + 1, ? FROM {outbox} WHERE id IN `)
	s.watch = tables.expand("SELECT id, partition_hash, next_attempt_at IS NULL FROM {outbox} WHERE id > ? ORDER BY id LIMIT ?")
	s.rangesHead = tables.expand("SELECT " + pendingCols + " FROM {outbox} FORCE INDEX (ix_partition) WHERE (")
	s.stats = tables.expand(`SELECT (SELECT COUNT(*) FROM {outbox}),
  (SELECT TIMESTAMPDIFF(MICROSECOND, created_at, NOW(6)) FROM {outbox} ORDER BY id LIMIT 1)`)
	return s, nil
}

// Tables returns the table names the store uses, defaults filled in.
func (s *RelayStore) Tables() Tables { return s.tables }

// PendingRow is one outbox row the relay may publish.
type PendingRow struct {
	ID            int64
	PartitionHash uint32 // as stored (see PartitionHash)
	MessageID     string
	Exchange      string // "" is the default exchange
	RoutingKey    string
	PartitionKey  string
	Type          string
	AggregateType string
	ContentType   string
	CorrelationID string
	Headers       []byte // JSON object as stored by Write, or nil; see DecodeHeaders
	Payload       []byte
	CreatedAt     time.Time
	Attempts      int // failed attempts so far
	// WrittenAt is when the row was written, on this process's clock: its age on the database
	// clock at fetch time, subtracted from the local time the fetch started. Latency metrics use
	// it, so neither clock skew nor time zones distort them.
	WrittenAt time.Time
}

// FetchRequest says which partition to read and how much.
type FetchRequest struct {
	Lo, Hi uint32 // the inclusive partition_hash range, see PartitionRange
	// From is where the scan starts: rows with partition_hash below it are not read. Values
	// below Lo mean Lo. The rows of a key share a hash and are decided from those rows alone, so
	// a scan starting at a hash boundary keeps strict order for every row it reads; a sweep
	// continues from the Next of a truncated one this way.
	From uint32
	// Limit is the most rows to return. Required.
	Limit int
	// MaxBytes stops adding rows once their payloads reach this many bytes (at least one row
	// is returned). 0 means no byte limit.
	MaxBytes int
	// MaxScan bounds the rows read to find Limit publishable ones. 0 means 10*Limit. A fetch
	// that reaches it first is Truncated: the caller continues from Next, so rows held back
	// in front of others (strict order) cannot keep those others from ever being read.
	MaxScan int
	// Strict holds back every row whose partition key has an earlier row waiting for its
	// retry (per-key order). Without it only the waiting rows themselves are skipped.
	Strict bool
	// Into is an array to append the rows to (from its start), so a caller that fetches again
	// and again reuses one instead of growing a new one each time. nil allocates.
	Into []PendingRow
	// Skip lists hashes whose rows are not read at all (at most MaxSkip), for a strict caller
	// that knows a row there waits for its retry (FetchResult.Waits): the rows held back
	// behind it need not be read again before it is due. Every row of a skipped hash waits,
	// whatever its key, so the rows of each key stay in order.
	Skip []uint32
}

// HashWait is a row found waiting for its retry: its hash, and how long until it is due.
type HashWait struct {
	Hash uint32
	In   time.Duration
}

// FetchResult is what one sweep of a partition found.
type FetchResult struct {
	Rows []PendingRow // publishable rows in (partition_hash, id) order
	// RetryIn is the time until the earliest row read and left for its retry becomes ready, 0
	// when the read found no such row (rows of FetchRequest.Skip's hashes are not read).
	RetryIn time.Duration
	// Waits are, in strict order, the rows skipped for their retry (a hash may repeat).
	Waits   []HashWait
	Scanned int // rows read
	Blocked int // rows read and held back behind an earlier row of their key (strict order)
	// Truncated says the fetch stopped at MaxScan before the end of the range; Next is the
	// hash boundary to continue from (after the last hash it read completely or skipped).
	Truncated bool
	Next      uint32
	// Full says Rows reached Limit or MaxBytes: rows may follow them in the range.
	Full bool
}

// fetchAfter continues a fetch after the last row read (a hash and an id).
const fetchAfter = "AND (partition_hash > ? OR (partition_hash = ? AND id > ?))"

// MaxSkip is the most hashes one Fetch leaves out (FetchRequest.Skip).
const MaxSkip = 256

// seekAfterBlocked is how many consecutive held-back rows of one hash a strict fetch reads
// before it skips the rest of that hash with a new range query. A key stuck behind a failed
// row then costs a few rows of every sweep, not its whole backlog. (Another key with the same
// 32-bit hash is skipped with it, so it waits too; it is never published out of order.)
const seekAfterBlocked = 64

// Fetch reads the publishable rows of one partition from the start of its range (or from
// req.From). Rows whose next attempt lies in the future are skipped, and in strict mode so are
// the later rows of their partition keys. Rows of one key share a hash, so they come in id
// (write) order.
func (s *RelayStore) Fetch(ctx context.Context, req FetchRequest) (FetchResult, error) {
	res := FetchResult{Rows: req.Into[:0]}
	if req.Limit <= 0 {
		return res, errors.New("outbox: fetch: limit must be positive")
	}
	if req.MaxScan <= 0 {
		req.MaxScan = 10 * req.Limit
	}
	if len(req.Skip) > MaxSkip {
		return res, fmt.Errorf("outbox: fetch: %d hashes to skip, at most %d", len(req.Skip), MaxSkip)
	}
	first, next := s.fetchFirst, s.fetchNext
	var skipArgs []any
	if len(req.Skip) > 0 {
		notIn := "AND partition_hash NOT IN (" + placeholders(len(req.Skip)) + ") "
		first, next = fmt.Sprintf(s.fetchWith, notIn), fmt.Sprintf(s.fetchWith, notIn+fetchAfter)
		skipArgs = make([]any, len(req.Skip))
		for i, h := range req.Skip {
			skipArgs[i] = h
		}
	}
	query := func(args ...any) []any { // from, hi, the skipped hashes, then the rest
		if len(skipArgs) == 0 {
			return args
		}
		return append(append(append(make([]any, 0, len(args)+len(skipArgs)), args[:2]...), skipArgs...), args[2:]...)
	}
	from := max(req.From, req.Lo)
	if from > req.Hi {
		return res, nil
	}
	var blocked map[string]struct{}
	bytes := 0
	var lastHash uint32
	var lastID int64
	fresh := true // the next page starts at from; else right after (lastHash, lastID)
	var runHash uint32
	runBlocked := 0 // consecutive held-back rows of runHash
	scan := newPendingScanner()
	for {
		var rows *sql.Rows
		var err error
		fetchStart := time.Now()
		if fresh {
			rows, err = s.db.QueryContext(ctx, first, query(from, req.Hi, req.Limit)...)
		} else {
			rows, err = s.db.QueryContext(ctx, next, query(from, req.Hi, lastHash, lastHash, lastID, req.Limit)...)
		}
		if err != nil {
			return res, fmt.Errorf("outbox: fetch partition [%d, %d]: %w", req.Lo, req.Hi, err)
		}
		n := 0
		full, seek := false, false
		for rows.Next() {
			if err := scan.scan(rows); err != nil {
				rows.Close()
				return res, fmt.Errorf("outbox: fetch: scan row: %w", err)
			}
			n++
			res.Scanned++
			hash := scan.hash
			lastID, lastHash = scan.id, hash
			if wait := scan.wait(); wait > 0 {
				if res.RetryIn == 0 || wait < res.RetryIn {
					res.RetryIn = wait
				}
				if req.Strict {
					if blocked == nil {
						blocked = map[string]struct{}{}
					}
					blocked[string(scan.partitionKey())] = struct{}{}
					res.Waits = append(res.Waits, HashWait{Hash: hash, In: wait})
				}
				continue
			}
			if _, ok := blocked[string(scan.partitionKey())]; ok {
				res.Blocked++
				if hash != runHash {
					runHash, runBlocked = hash, 0
				}
				if runBlocked++; runBlocked >= seekAfterBlocked {
					seek = true
					break
				}
				continue
			}
			runBlocked = 0
			r := scan.row(fetchStart)
			res.Rows = append(res.Rows, r)
			bytes += len(r.Payload)
			if len(res.Rows) >= req.Limit || (req.MaxBytes > 0 && bytes >= req.MaxBytes) {
				full = true
				break
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return res, fmt.Errorf("outbox: fetch partition [%d, %d]: %w", req.Lo, req.Hi, err)
		}
		switch {
		case seek:
			if runHash >= req.Hi {
				return res, nil // the held-back hash was the last one: the range is done
			}
			from, fresh, runBlocked = runHash+1, true, 0
		case full || n < req.Limit:
			res.Full = full
			return res, nil
		default:
			fresh = false
		}
		if res.Scanned >= req.MaxScan {
			next := from
			if !fresh {
				// Continue at the start of the last hash read: its earlier rows are read again,
				// so its keys are decided from all their rows.
				next = lastHash
				if next == from { // the whole budget went into one hash: move past it
					if next == req.Hi {
						return res, nil
					}
					next++
				}
			}
			res.Truncated, res.Next = true, next
			return res, nil
		}
	}
}

// Delete removes rows the broker confirmed, with one statement per chunk of ids.
func (s *RelayStore) Delete(ctx context.Context, ids []int64) error {
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), maxIDsPerStatement)]
		ids = ids[len(chunk):]
		q, args := inList(s.deleteHead, chunk)
		if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("outbox: delete %d published rows: %w", len(chunk), err)
		}
	}
	return nil
}

// Failure is one failed publish of a row.
type Failure struct {
	ID    int64
	Error string // why it failed, stored as last_error (cut to 1024 bytes)
	// Dead moves the row to the dead table instead of scheduling another attempt.
	Dead bool
	// Delay until the next attempt, for rows that are not dead.
	Delay time.Duration
}

// RecordFailures counts a failed attempt on each row: rows that stay get their next attempt
// scheduled after Delay, dead rows move to the dead table with their last error, each group in
// one statement (dead rows in one transaction). Rows already gone (published by another relay)
// are ignored.
func (s *RelayStore) RecordFailures(ctx context.Context, failures []Failure) error {
	type group struct {
		delay time.Duration
		err   string
	}
	retry := map[group][]int64{}
	dead := map[string][]int64{}
	var order []group
	var deadOrder []string
	for _, f := range failures {
		msg := truncateError(f.Error)
		if f.Dead {
			if _, ok := dead[msg]; !ok {
				deadOrder = append(deadOrder, msg)
			}
			dead[msg] = append(dead[msg], f.ID)
			continue
		}
		g := group{f.Delay, msg}
		if _, ok := retry[g]; !ok {
			order = append(order, g)
		}
		retry[g] = append(retry[g], f.ID)
	}
	for _, g := range order {
		ids := retry[g]
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), maxIDsPerStatement)]
			ids = ids[len(chunk):]
			q, args := inList(s.failHead, chunk, g.delay.Microseconds(), g.err)
			if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("outbox: record %d failed publishes: %w", len(chunk), err)
			}
		}
	}
	for _, msg := range deadOrder {
		if err := s.moveDead(ctx, dead[msg], msg); err != nil {
			return err
		}
	}
	return nil
}

// moveDead copies rows to the dead table and deletes them from the outbox in one transaction.
func (s *RelayStore) moveDead(ctx context.Context, ids []int64, lastError string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("outbox: move %d rows to %s: %w", len(ids), s.tables.Dead, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), maxIDsPerStatement)]
		ids = ids[len(chunk):]
		q, args := inList(s.deadInsertHead, chunk, lastError)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("outbox: copy %d rows to %s: %w", len(chunk), s.tables.Dead, err)
		}
		q, args = inList(s.deleteHead, chunk)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("outbox: delete %d dead rows from %s: %w", len(chunk), s.tables.Outbox, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("outbox: move rows to %s: commit: %w", s.tables.Dead, err)
	}
	return nil
}

// Stats returns the number of rows in the outbox and the age of the oldest (lowest id) one,
// 0 when it is empty. Counting reads the whole table: call it every few seconds, not per sweep.
func (s *RelayStore) Stats(ctx context.Context) (backlog int64, oldest time.Duration, err error) {
	var ageUS sql.NullInt64
	if err := s.db.QueryRowContext(ctx, s.stats).Scan(&backlog, &ageUS); err != nil {
		return 0, 0, fmt.Errorf("outbox: read backlog: %w", err)
	}
	if ageUS.Valid && ageUS.Int64 > 0 {
		oldest = time.Duration(ageUS.Int64) * time.Microsecond
	}
	return backlog, oldest, nil
}

// maxIDsPerStatement keeps id lists well below the placeholder limit and packet sizes.
const maxIDsPerStatement = 1000

// inList returns head + "(?,?,...)" and the arguments: first the leading args, then the ids.
func inList(head string, ids []int64, leading ...any) (string, []any) {
	var b strings.Builder
	b.Grow(len(head) + 2*len(ids) + 2)
	b.WriteString(head)
	b.WriteByte('(')
	args := make([]any, 0, len(leading)+len(ids))
	args = append(args, leading...)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('?')
		args = append(args, id)
	}
	b.WriteByte(')')
	return b.String(), args
}

// placeholders returns n comma-separated "?".
func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// truncateError cuts an error text to the last_error column's 1024 bytes.
func truncateError(s string) string {
	if len(s) > 1024 {
		return s[:1021] + "..."
	}
	return s
}
