package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/syncworker/syncworker/internal/redact"
	"github.com/syncworker/syncworker/internal/tlsconfig"
	"github.com/syncworker/syncworker/internal/verify"
)

func init() {
	register(&command{name: "verify", summary: "compare a table with its row-sync replica; exit 3 on drift", run: runVerify})
}

// exitDrift is verify's exit code when the replica differs (1 stays for errors, 2 for usage).
const exitDrift = 3

// driftError reports drift with its own exit code; the report is already printed.
type driftError struct {
	r      *verify.Report
	joined error // several tables drifted
}

func (e driftError) Error() string {
	if e.joined != nil {
		return e.joined.Error()
	}
	return fmt.Sprintf("replica %s differs from %s: %d differing, %d missing, %d extra rows",
		e.r.ReplicaTable, e.r.SourceTable, e.r.Differing, e.r.Missing, e.r.Extra)
}
func (driftError) ExitCode() int { return exitDrift }

func runVerify(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "verify", "--source-dsn DSN [--replica-dsn DSN] (--table T --key COL[,COL] | --config consume.yaml) [flags]")
	// DSN defaults come from the environment after parsing, so --help never prints a password.
	sourceDSN := fs.String("source-dsn", "", "DSN of the source database (env SYNCWORKER_MYSQL_DSN)")
	replicaDSN := fs.String("replica-dsn", "", "DSN of the replica database, may be another server (env SYNCWORKER_REPLICA_DSN, else the --config file's mysql.dsn)")
	table := fs.String("table", "", "source table")
	replicaTable := fs.String("replica-table", "", "replica table (default: --table)")
	key := fs.String("key", "", "comma-separated key columns (the mapping's key_columns)")
	columns := fs.String("columns", "", "comma-separated columns to compare (default: every column both tables have)")
	chunk := fs.Int("chunk-size", 1000, "source rows per checksummed chunk")
	samples := fs.Int("samples", 10, "sample keys printed per kind of difference (0: none)")
	asJSON := fs.Bool("json", false, "print the report as JSON (one object per table)")
	mappingFile := fs.String("config", "", "the consumer's config file: verify every row_sync table mapping in it (source, target, key_columns, columns) instead of --table; its mysql.dsn is the replica")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var jobs []verify.Config
	var file *settings
	if *mappingFile != "" {
		var err error
		if jobs, file, err = verifyJobsFromConsumerFile(*mappingFile); err != nil {
			return err
		}
	}
	if *sourceDSN == "" {
		*sourceDSN = env.getenv("SYNCWORKER_MYSQL_DSN")
	}
	if *replicaDSN == "" {
		*replicaDSN = env.getenv("SYNCWORKER_REPLICA_DSN")
	}
	if *replicaDSN == "" && file != nil && file.MySQL.DSN != "" {
		// The consumer's own database is the replica, reached as the consumer reaches it.
		errs := &configErrors{file: file.file, lines: file.lines}
		expandSetting("mysql.dsn", &file.MySQL.DSN, env.getenv, errs)
		if err := errs.err(); err != nil {
			return err
		}
		dsn, err := tlsconfig.ApplyToDSN(file.MySQL.DSN, file.MySQL.TLS)
		if err != nil {
			return fmt.Errorf("%s: mysql.tls: %w", file.file, err)
		}
		*replicaDSN = dsn
	}
	var problems []error
	required := []struct{ v, what string }{{*sourceDSN, "--source-dsn"}, {*replicaDSN, "--replica-dsn"}}
	if *mappingFile == "" {
		required = append(required, struct{ v, what string }{*table, "--table (or --config)"}, struct{ v, what string }{*key, "--key"})
	}
	for _, req := range required {
		if req.v == "" {
			problems = append(problems, fmt.Errorf("%s is required", req.what))
		}
	}
	if *chunk < 1 || *chunk > verify.MaxChunkSize {
		problems = append(problems, fmt.Errorf("--chunk-size %d is out of range; allowed: 1 to %d", *chunk, verify.MaxChunkSize))
	}
	if *samples < 0 {
		problems = append(problems, fmt.Errorf("--samples %d is negative", *samples))
	}
	if err := errors.Join(problems...); err != nil {
		return usageError{msg: err.Error()}
	}
	base := verify.Config{ChunkSize: *chunk, Samples: *samples}
	if *samples == 0 {
		base.Samples = verify.NoSamples // 0 asks for none; in verify.Config it means the default
	}
	if *mappingFile == "" {
		jobs = []verify.Config{{SourceTable: *table, ReplicaTable: *replicaTable, KeyColumns: splitList(*key), Columns: splitList(*columns)}}
	}
	source, err := openVerifyDB(*sourceDSN)
	if err != nil {
		return err
	}
	defer source.Close()
	replica, err := openVerifyDB(*replicaDSN)
	if err != nil {
		return err
	}
	defer replica.Close()
	var drifted []error
	for _, job := range jobs {
		job.Source, job.Replica, job.ChunkSize, job.Samples = source, replica, base.ChunkSize, base.Samples
		report, err := verify.Run(ctx, job)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(report); err != nil {
				return err
			}
		} else {
			printVerifyReport(env.stdout, report)
		}
		if report.Drift() {
			drifted = append(drifted, driftError{r: report})
		}
	}
	if len(drifted) > 0 {
		return driftError{joined: errors.Join(drifted...)}
	}
	return nil
}

// verifyJobsFromConsumerFile reads the row_sync table mappings of a consumer's config file
// (the unified file's consume section or a consume-only file; settings.go decodes both,
// strictly) and returns them with the file's settings, whose mysql.dsn (not yet expanded) is
// the consumer's own database: the replica.
func verifyJobsFromConsumerFile(path string) ([]verify.Config, *settings, error) {
	s, err := loadSettingsFile(path)
	if err != nil {
		return nil, nil, err
	}
	if len(s.Consume.RowSync.Tables) == 0 {
		return nil, nil, fmt.Errorf("%s maps no row_sync tables (consume.row_sync.tables)", path)
	}
	var jobs []verify.Config
	for _, m := range s.Consume.RowSync.Tables {
		jobs = append(jobs, verify.Config{SourceTable: m.Source, ReplicaTable: m.Target, KeyColumns: m.KeyColumns, Columns: m.Columns})
	}
	return jobs, s, nil
}

func openVerifyDB(dsn string) (*sql.DB, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", redact.DSN(dsn), err)
	}
	db.SetMaxOpenConns(4)
	return db, nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// printVerifyReport writes the human-readable report.
func printVerifyReport(w io.Writer, r *verify.Report) {
	fmt.Fprintf(w, "verify %s -> %s  key (%s)  columns %s\n", r.SourceTable, r.ReplicaTable,
		strings.Join(r.KeyColumns, ", "), strings.Join(r.Columns, ", "))
	fmt.Fprintf(w, "  rows: source %d, replica %d in %d chunks (%d differing) in %s\n",
		r.SourceRows, r.ReplicaRows, r.Chunks, r.DifferingChunks, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  matching  %d\n", r.Matching)
	for _, kind := range []struct {
		name string
		n    int64
		keys []string
	}{{"differing", r.Differing, r.DifferingKeys}, {"missing", r.Missing, r.MissingKeys}, {"extra", r.Extra, r.ExtraKeys}} {
		line := fmt.Sprintf("  %-9s %d", kind.name, kind.n)
		if len(kind.keys) > 0 {
			line += "  e.g. " + strings.Join(kind.keys, "; ")
		}
		fmt.Fprintln(w, line)
	}
	if r.Drift() {
		fmt.Fprintln(w, "DRIFT: the replica does not match the source")
	} else {
		fmt.Fprintln(w, "OK: the replica matches the source")
	}
}
