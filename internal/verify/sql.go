package verify

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/syncworker/syncworker/outbox"
)

// side is one table's schema, read from information_schema of its own server.
type side struct {
	table string
	types map[string]column // lower-case name -> column
	order []string          // lower-case names in table order
}

type column struct{ name, dataType string }

func readSide(ctx context.Context, db *sql.DB, table string) (*side, error) {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, table)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", table, err)
	}
	defer rows.Close()
	s := &side{table: table, types: map[string]column{}}
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.dataType); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", table, err)
		}
		lower := strings.ToLower(c.name)
		s.types[lower] = column{name: c.name, dataType: strings.ToLower(c.dataType)}
		s.order = append(s.order, lower)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", table, err)
	}
	if len(s.order) == 0 {
		return nil, fmt.Errorf("table %s does not exist in the selected database", table)
	}
	return s, nil
}

// canonical is SQL giving the text of a column that is the same on both sides whatever the
// column's exact type: decimals at a fixed scale, times with microseconds, binary as hex,
// text as utf8mb4. NULL stays NULL.
func (s *side) canonical(name string) string {
	q := outbox.QuoteIdentifier(name)
	switch s.types[strings.ToLower(name)].dataType {
	case "decimal", "float", "double":
		return "CAST(" + q + " AS DECIMAL(65,30))"
	case "datetime", "timestamp":
		return "DATE_FORMAT(" + q + ", '%Y-%m-%d %H:%i:%s.%f')"
	case "date":
		return "DATE_FORMAT(" + q + ", '%Y-%m-%d')"
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit":
		return "HEX(" + q + ")"
	case "tinyint", "smallint", "mediumint", "int", "bigint", "year":
		return "CAST(" + q + " AS CHAR)"
	default:
		return "CONVERT(" + q + " USING utf8mb4)"
	}
}

// query holds one side's statements over the chosen columns.
type query struct {
	table   string   // quoted
	keys    []string // quoted key columns, in order
	keyText string   // canonical key text, for matching rows across sides
	rowHash string   // 128 bits of the SHA-256 of the canonical row text (32 hex digits)
}

func (s *side) query(keys, cols []string) query {
	q := query{table: outbox.QuoteIdentifier(s.table)}
	var keyParts, rowParts []string
	for _, k := range keys {
		q.keys = append(q.keys, outbox.QuoteIdentifier(k))
		keyParts = append(keyParts, s.canonical(k))
	}
	// Each value is written as its length, ':' and the text, and NULL as 'N', so no two
	// different rows have the same text whatever their values contain.
	for _, c := range append(append([]string(nil), keys...), cols...) {
		e := s.canonical(c)
		rowParts = append(rowParts, "IFNULL(CONCAT(CHAR_LENGTH("+e+"), ':', "+e+"), 'N')")
	}
	q.keyText = "CONCAT_WS(',', " + strings.Join(wrapNull(keyParts), ", ") + ")"
	// SHA2, not MD5: MySQL 9 moved MD5() out of the server into an optional component, and
	// every MariaDB and MySQL has SHA2. Half of its digest is as wide as MD5's was.
	q.rowHash = "LEFT(SHA2(CONCAT_WS(',', " + strings.Join(rowParts, ", ") + "), 256), 32)"
	return q
}

func wrapNull(parts []string) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = "IFNULL(" + p + ", 'NULL')"
	}
	return out
}

// after is the condition "key > bound" (keyset pagination), expanded so both MySQL and
// MariaDB use the key's index: (a > ?) OR (a = ? AND b > ?) ...
func (q query) after(bound []any) (string, []any) {
	return q.compare(bound, ">")
}

// upTo is "key <= bound".
func (q query) upTo(bound []any) (string, []any) {
	cond, args := q.compare(bound, "<")
	eq := make([]string, len(q.keys))
	for i, k := range q.keys {
		eq[i] = k + " = ?"
	}
	return "(" + cond + " OR (" + strings.Join(eq, " AND ") + "))", append(args, bound...)
}

func (q query) compare(bound []any, op string) (string, []any) {
	var ors []string
	var args []any
	for i := range q.keys {
		var ands []string
		for j := 0; j < i; j++ {
			ands = append(ands, q.keys[j]+" = ?")
			args = append(args, bound[j])
		}
		ands = append(ands, q.keys[i]+" "+op+" ?")
		args = append(args, bound[i])
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")", args
}

// where is the chunk's range (lo, hi]; a nil bound is open.
func (q query) where(lo, hi []any) (string, []any) {
	conds := []string{"1=1"}
	var args []any
	if lo != nil {
		c, a := q.after(lo)
		conds, args = append(conds, c), append(args, a...)
	}
	if hi != nil {
		c, a := q.upTo(hi)
		conds, args = append(conds, c), append(args, a...)
	}
	return strings.Join(conds, " AND "), args
}

// checksum is the chunk's row count and XOR of row hashes (their two 64-bit halves).
func (q query) checksum(ctx context.Context, db *sql.DB, lo, hi []any) (sum chunkSum, err error) {
	where, args := q.where(lo, hi)
	stmt := "SELECT COUNT(*), IFNULL(BIT_XOR(CAST(CONV(LEFT(h, 16), 16, 10) AS UNSIGNED)), 0), " +
		"IFNULL(BIT_XOR(CAST(CONV(RIGHT(h, 16), 16, 10) AS UNSIGNED)), 0) FROM (SELECT " + q.rowHash +
		" AS h FROM " + q.table + " WHERE " + where + ") AS chunk"
	err = db.QueryRowContext(ctx, stmt, args...).Scan(&sum.rows, &sum.hi, &sum.lo)
	return sum, err
}

type chunkSum struct {
	rows   int64
	hi, lo uint64
}

// nextBound returns the key of the chunkSize-th row after lo (nil when fewer remain).
func (q query) nextBound(ctx context.Context, db *sql.DB, lo []any, chunkSize int) ([]any, error) {
	where, args := q.where(lo, nil)
	stmt := "SELECT " + strings.Join(q.keys, ", ") + " FROM " + q.table + " WHERE " + where +
		" ORDER BY " + strings.Join(q.keys, ", ") + " LIMIT 1 OFFSET " + fmt.Sprint(chunkSize-1)
	bound := make([]any, len(q.keys))
	ptrs := make([]any, len(bound))
	for i := range bound {
		ptrs[i] = &bound[i]
	}
	err := db.QueryRowContext(ctx, stmt, args...).Scan(ptrs...)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return bound, nil
}

// rows streams (canonical key text, row hash) of the chunk.
func (q query) rows(ctx context.Context, db *sql.DB, lo, hi []any, each func(key, hash string) error) error {
	where, args := q.where(lo, hi)
	rows, err := db.QueryContext(ctx, "SELECT "+q.keyText+", "+q.rowHash+" FROM "+q.table+" WHERE "+where, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var key, hash string
		if err := rows.Scan(&key, &hash); err != nil {
			return err
		}
		if err := each(key, hash); err != nil {
			return err
		}
	}
	return rows.Err()
}
