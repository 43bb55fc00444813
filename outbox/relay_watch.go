package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The relay's watcher notices new rows with Watch, a cheap primary-key read of three columns,
// and reads the partitions it found new rows for with FetchRanges, so that at moderate rates
// one statement serves many partitions instead of a sweep each.

// NewRow is a row the relay's watcher saw: enough to know which partition has work.
type NewRow struct {
	ID            int64
	PartitionHash uint32
	Ready         bool // never failed (rows waiting for a retry are not news)
}

// Watch returns up to limit rows with ids above afterID, in id order. It walks the primary key
// from afterID and reads at most limit rows, so when nothing is new it costs one index probe.
// It never decides what is published: the relay reads the rows it publishes with Fetch or
// FetchRanges.
func (s *RelayStore) Watch(ctx context.Context, afterID int64, limit int) ([]NewRow, error) {
	rows, err := s.db.QueryContext(ctx, s.watch, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: watch for new rows: %w", err)
	}
	defer rows.Close()
	var out []NewRow
	for rows.Next() {
		var r NewRow
		if err := rows.Scan(&r.ID, &r.PartitionHash, &r.Ready); err != nil {
			return nil, fmt.Errorf("outbox: watch: scan: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: watch for new rows: %w", err)
	}
	return out, nil
}

// HashRange is an inclusive range of partition_hash, one partition's (see PartitionRange).
type HashRange struct{ Lo, Hi uint32 }

// RangeRows is what FetchRanges read of one range.
type RangeRows struct {
	Rows []PendingRow // the range's ready rows in (partition_hash, id) order
	// Complete says the range was read to its end; otherwise the read stopped at the row or
	// byte limit before (or inside) it, and Rows holds only its first rows, if any.
	Complete bool
	// Waiting says a row of the range waits for its retry: it was left out, and in strict order
	// it holds back later rows of its key, which Rows may hold. Publish nothing of such a range
	// without the ordering rules of Fetch.
	Waiting bool
}

// FetchRanges reads the rows of several partitions in one statement, one walk of
// ix_partition over the ranges (sorted, disjoint) in (partition_hash, id) order, as Fetch
// reads one; the relay's watcher serves the partitions it found new rows for this way. It
// stops after limit rows, or once their payloads reach maxBytes (0: no byte limit), and says
// per range whether it got to the range's end.
func (s *RelayStore) FetchRanges(ctx context.Context, ranges []HashRange, limit, maxBytes int) ([]RangeRows, error) {
	if len(ranges) == 0 {
		return nil, nil
	}
	if limit <= 0 {
		return nil, errors.New("outbox: fetch ranges: limit must be positive")
	}
	var q strings.Builder
	q.WriteString(s.rangesHead)
	args := make([]any, 0, 2*len(ranges)+1)
	for i, r := range ranges {
		if i > 0 {
			if r.Lo <= ranges[i-1].Hi {
				return nil, fmt.Errorf("outbox: fetch ranges: range %d [%d, %d] is not after [%d, %d]",
					i, r.Lo, r.Hi, ranges[i-1].Lo, ranges[i-1].Hi)
			}
			q.WriteString(" OR ")
		}
		q.WriteString("partition_hash BETWEEN ? AND ?")
		args = append(args, r.Lo, r.Hi)
	}
	q.WriteString(") ORDER BY partition_hash, id LIMIT ?")
	args = append(args, limit)

	out := make([]RangeRows, len(ranges))
	readAt := time.Now()
	rows, err := s.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("outbox: fetch %d partitions: %w", len(ranges), err)
	}
	defer rows.Close()
	cur, n, bytes := 0, 0, 0 // the range of the last row; rows and payload bytes read
	stopped := false
	scan := newPendingScanner()
	for rows.Next() {
		if err := scan.scan(rows); err != nil {
			return nil, fmt.Errorf("outbox: fetch partitions: scan row: %w", err)
		}
		hash := scan.hash
		for cur < len(ranges) && hash > ranges[cur].Hi {
			out[cur].Complete = true // the walk went past its end
			cur++
		}
		if cur == len(ranges) || hash < ranges[cur].Lo {
			// The WHERE clause rules this out; a server that broke it must not be trusted with
			// what a range holds.
			return nil, fmt.Errorf("outbox: fetch partitions: row %d has hash %d outside the ranges asked", scan.id, hash)
		}
		n++
		if scan.wait() > 0 {
			out[cur].Waiting = true
		} else {
			r := scan.row(readAt)
			out[cur].Rows = append(out[cur].Rows, r)
			bytes += len(r.Payload)
		}
		if maxBytes > 0 && bytes >= maxBytes {
			stopped = true
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: fetch partitions: %w", err)
	}
	if !stopped && n < limit {
		for i := cur; i < len(out); i++ {
			out[i].Complete = true // the walk ran out of rows: nothing more in any range
		}
	}
	return out, nil
}
