// Package verify compares a source table with its row-sync replica, chunk by chunk, without
// loading either table: the proof that a sync worked.
//
// The key space is walked in ordered chunks (keyset pagination on the key columns, on the
// source). For each chunk both servers compute COUNT(*) and the XOR of a 128-bit hash (half a
// SHA-256) of every row's canonical text; only a chunk whose sums differ is read row by row (its source rows,
// at most ChunkSize, are held; the replica's rows are streamed) to classify differing, missing
// and extra rows. Source and replica may live on different servers.
package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/syncworker/syncworker/outbox"
)

// Config says what to compare. Source, Replica, SourceTable and KeyColumns are required.
type Config struct {
	// Source and Replica are pools on the two databases (they may be on different servers).
	Source, Replica *sql.DB
	// SourceTable is the table rows are synced from; ReplicaTable the target. Default
	// ReplicaTable = SourceTable.
	SourceTable, ReplicaTable string
	// KeyColumns identify a row (the mapping's key_columns). Both tables must order them the
	// same way: integers, or strings with the same collation on both sides.
	KeyColumns []string
	// Columns are the non-key columns compared (the mapping's allow-list). Default: every
	// column the two tables have in common.
	Columns []string
	// ChunkSize is the number of source rows per checksummed chunk. Default 1000.
	ChunkSize int
	// Samples is how many keys are kept for each kind of difference. Default 10; NoSamples
	// keeps none (the counts only).
	Samples int
}

// Report is the outcome of Run.
type Report struct {
	SourceTable  string   `json:"source_table"`
	ReplicaTable string   `json:"replica_table"`
	KeyColumns   []string `json:"key_columns"`
	Columns      []string `json:"columns"`

	SourceRows      int64 `json:"source_rows"`
	ReplicaRows     int64 `json:"replica_rows"`
	Chunks          int   `json:"chunks"`
	DifferingChunks int   `json:"differing_chunks"`

	Matching int64 `json:"matching"`
	// Differing rows exist on both sides with other values; Missing rows are in the source
	// only; Extra rows are in the replica only.
	Differing int64 `json:"differing"`
	Missing   int64 `json:"missing"`
	Extra     int64 `json:"extra"`

	DifferingKeys []string `json:"differing_keys"`
	MissingKeys   []string `json:"missing_keys"`
	ExtraKeys     []string `json:"extra_keys"`

	Elapsed time.Duration `json:"elapsed_ns"`
}

// Drift reports whether the replica differs from the source.
func (r *Report) Drift() bool { return r.Differing+r.Missing+r.Extra > 0 }

// MaxChunkSize bounds Config.ChunkSize: the source rows of a differing chunk are held in memory.
const MaxChunkSize = 1_000_000

// ErrInvalidConfig is wrapped by the error of a Config that cannot be used.
var ErrInvalidConfig = errors.New("verify: invalid config")

func (c *Config) setDefaults() {
	if c.ReplicaTable == "" {
		c.ReplicaTable = c.SourceTable
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = 1000
	}
	if c.Samples == 0 {
		c.Samples = 10
	}
}

// NoSamples as Config.Samples keeps no sample keys (0 means the default).
const NoSamples = -1

// Validate returns every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Source == nil || c.Replica == nil {
		bad("Source and Replica databases are required")
	}
	for _, t := range []string{c.SourceTable, c.ReplicaTable} {
		if err := outbox.ValidateIdentifier(t); err != nil {
			bad("table: %v", err)
		}
	}
	if len(c.KeyColumns) == 0 {
		bad("at least one key column is required")
	}
	for _, col := range append(append([]string(nil), c.KeyColumns...), c.Columns...) {
		if err := outbox.ValidateIdentifier(col); err != nil {
			bad("column: %v", err)
		}
	}
	if c.ChunkSize < 1 || c.ChunkSize > MaxChunkSize {
		bad("ChunkSize %d is outside 1..%d", c.ChunkSize, MaxChunkSize)
	}
	if c.Samples < NoSamples {
		bad("Samples %d is negative", c.Samples)
	}
	return errors.Join(errs...)
}

// Run compares the tables and returns the report; drift is not an error (see Report.Drift).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	src, err := readSide(ctx, cfg.Source, cfg.SourceTable)
	if err != nil {
		return nil, fmt.Errorf("verify: source: %w", err)
	}
	rep, err := readSide(ctx, cfg.Replica, cfg.ReplicaTable)
	if err != nil {
		return nil, fmt.Errorf("verify: replica: %w", err)
	}
	keys, cols, err := pickColumns(cfg, src, rep)
	if err != nil {
		return nil, err
	}
	w := &walker{cfg: cfg, src: src.query(keys, cols), rep: rep.query(keys, cols)}
	w.report = &Report{SourceTable: cfg.SourceTable, ReplicaTable: cfg.ReplicaTable, KeyColumns: keys, Columns: cols}
	if err := w.walk(ctx); err != nil {
		return nil, err
	}
	w.report.Elapsed = time.Since(start)
	return w.report, nil
}

// pickColumns resolves the key and compared columns to each side's schema names.
func pickColumns(cfg Config, src, rep *side) (keys, cols []string, err error) {
	var errs []error
	need := func(name string) string {
		s, okS := src.types[strings.ToLower(name)]
		_, okR := rep.types[strings.ToLower(name)]
		if !okS {
			errs = append(errs, fmt.Errorf("verify: source table %s has no column %q", cfg.SourceTable, name))
		}
		if !okR {
			errs = append(errs, fmt.Errorf("verify: replica table %s has no column %q", cfg.ReplicaTable, name))
		}
		return s.name
	}
	isKey := map[string]bool{}
	for _, k := range cfg.KeyColumns {
		keys = append(keys, need(k))
		isKey[strings.ToLower(k)] = true
	}
	if len(cfg.Columns) > 0 {
		for _, c := range cfg.Columns {
			if !isKey[strings.ToLower(c)] {
				cols = append(cols, need(c))
			}
		}
	} else {
		for _, lower := range src.order {
			if _, inReplica := rep.types[lower]; inReplica && !isKey[lower] {
				cols = append(cols, src.types[lower].name)
			}
		}
	}
	return keys, cols, errors.Join(errs...)
}
