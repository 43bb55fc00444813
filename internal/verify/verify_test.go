package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
)

// The replica uses other (compatible) types than the source on purpose: a wider DECIMAL,
// latin1 text, an extra column that is not compared.
const (
	sourceDDL = `CREATE TABLE orders (id BIGINT NOT NULL PRIMARY KEY, customer VARCHAR(32) NULL,
		amount DECIMAL(12,2) NOT NULL, created_at DATETIME(6) NOT NULL, note VARBINARY(16) NULL) CHARSET utf8mb4`
	replicaDDL = `CREATE TABLE orders_copy (id BIGINT NOT NULL PRIMARY KEY, customer VARCHAR(32) CHARACTER SET latin1 NULL,
		amount DECIMAL(14,4) NOT NULL, created_at DATETIME(6) NOT NULL, note VARBINARY(16) NULL,
		synced_at TIMESTAMP NULL) CHARSET utf8mb4`
)

func setup(t *testing.T, rows int) (src, rep *testenv.Database) {
	t.Helper()
	src, rep = testenv.NewDatabase(t), testenv.NewDatabase(t)
	mustExec(t, src, sourceDDL)
	mustExec(t, rep, replicaDDL)
	ctx := context.Background()
	// Both sides get the same rows through INSERT ... SELECT from a generated sequence.
	for _, d := range []struct {
		db    *testenv.Database
		table string
	}{{src, "orders"}, {rep, "orders_copy"}} {
		for start := 1; start <= rows; start += 5000 {
			end := min(start+4999, rows)
			var values []string
			for i := start; i <= end; i++ {
				customer := fmt.Sprintf("'c%d'", i%97)
				if i%13 == 0 {
					customer = "NULL"
				}
				values = append(values, fmt.Sprintf("(%d, %s, %d.%02d, '2026-01-02 03:04:05.%06d', %s)",
					i, customer, i, i%100, i, map[bool]string{true: "NULL", false: "X'00FF'"}[i%7 == 0]))
			}
			if _, err := d.db.DB.ExecContext(ctx, "INSERT INTO "+d.table+" (id, customer, amount, created_at, note) VALUES "+
				strings.Join(values, ", ")); err != nil {
				t.Fatal(err)
			}
		}
	}
	return src, rep
}

func mustExec(t *testing.T, d *testenv.Database, stmt string, args ...any) {
	t.Helper()
	if _, err := d.DB.ExecContext(context.Background(), stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func run(t *testing.T, src, rep *testenv.Database, chunk int) *Report {
	t.Helper()
	return runSampling(t, src, rep, chunk, 5)
}

func runSampling(t *testing.T, src, rep *testenv.Database, chunk, samples int) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := Run(ctx, Config{Source: src.DB, Replica: rep.DB, SourceTable: "orders", ReplicaTable: "orders_copy",
		KeyColumns: []string{"id"}, ChunkSize: chunk, Samples: samples})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCleanReplicaPasses(t *testing.T) {
	t.Parallel()
	src, rep := setup(t, 2500)
	r := run(t, src, rep, 300)
	if r.Drift() || r.Matching != 2500 || r.SourceRows != 2500 || r.ReplicaRows != 2500 {
		t.Fatalf("clean replica: %+v", r)
	}
	if want := []string{"customer", "amount", "created_at", "note"}; !slices.Equal(r.Columns, want) {
		t.Fatalf("compared columns %v, want %v (synced_at is only in the replica)", r.Columns, want)
	}
	if r.Chunks != 2500/300+1 || r.DifferingChunks != 0 {
		t.Fatalf("chunks %d differing %d", r.Chunks, r.DifferingChunks)
	}
}

func TestInjectedDriftIsClassified(t *testing.T) {
	t.Parallel()
	src, rep := setup(t, 1000)
	mustExec(t, rep, "UPDATE orders_copy SET amount = amount + 0.01 WHERE id = 17")
	mustExec(t, rep, "UPDATE orders_copy SET customer = NULL WHERE id = 18")                            // value -> NULL
	mustExec(t, rep, "UPDATE orders_copy SET customer = '' WHERE id = 26")                              // NULL -> empty text
	mustExec(t, rep, "UPDATE orders_copy SET created_at = '2026-01-02 03:04:05.000001' WHERE id = 500") // microseconds
	mustExec(t, rep, "DELETE FROM orders_copy WHERE id IN (3, 999)")
	mustExec(t, rep, "INSERT INTO orders_copy (id, customer, amount, created_at) VALUES (0, 'x', 1, NOW()), (1001, 'y', 2, NOW())")
	mustExec(t, rep, "UPDATE orders_copy SET synced_at = NOW() WHERE id = 40") // not compared

	r := run(t, src, rep, 100)
	if !r.Drift() {
		t.Fatalf("drift not detected: %+v", r)
	}
	check := func(what string, n int64, keys, want []string) {
		t.Helper()
		slices.Sort(keys)
		if n != int64(len(want)) || !slices.Equal(keys, want) {
			t.Errorf("%s: %d %v, want %v", what, n, keys, want)
		}
	}
	check("differing", r.Differing, r.DifferingKeys, []string{"17", "18", "26", "500"})
	check("missing", r.Missing, r.MissingKeys, []string{"3", "999"})
	check("extra", r.Extra, r.ExtraKeys, []string{"0", "1001"})
	if r.Matching != 1000-6 {
		t.Errorf("matching %d, want %d", r.Matching, 1000-6)
	}

	// NoSamples: the same counts, no keys.
	r = runSampling(t, src, rep, 100, NoSamples)
	if r.Differing != 4 || r.Missing != 2 || r.Extra != 2 || len(r.DifferingKeys)+len(r.MissingKeys)+len(r.ExtraKeys) != 0 {
		t.Errorf("with NoSamples: %d/%d/%d differing/missing/extra, keys %v %v %v; want 4/2/2 and no keys",
			r.Differing, r.Missing, r.Extra, r.DifferingKeys, r.MissingKeys, r.ExtraKeys)
	}
}

func TestCompositeKeyAndColumnList(t *testing.T) {
	t.Parallel()
	src, rep := testenv.NewDatabase(t), testenv.NewDatabase(t)
	mustExec(t, src, "CREATE TABLE order_lines (order_id INT, line INT, sku VARCHAR(10), qty INT, PRIMARY KEY (order_id, line))")
	mustExec(t, rep, "CREATE TABLE order_lines (order_id INT, line INT, sku VARCHAR(10), qty INT, PRIMARY KEY (order_id, line))")
	var values []string
	for o := 1; o <= 30; o++ {
		for l := 1; l <= 7; l++ {
			values = append(values, fmt.Sprintf("(%d, %d, 's%d', %d)", o, l, l, o*l))
		}
	}
	mustExec(t, src, "INSERT INTO order_lines VALUES "+strings.Join(values, ","))
	mustExec(t, rep, "INSERT INTO order_lines VALUES "+strings.Join(values, ","))
	mustExec(t, rep, "UPDATE order_lines SET qty = 0 WHERE order_id = 12 AND line = 3")
	mustExec(t, rep, "UPDATE order_lines SET sku = 'zz' WHERE order_id = 13 AND line = 1") // sku is not compared
	mustExec(t, rep, "DELETE FROM order_lines WHERE order_id = 20 AND line = 7")

	r, err := Run(context.Background(), Config{Source: src.DB, Replica: rep.DB, SourceTable: "order_lines",
		KeyColumns: []string{"order_id", "line"}, Columns: []string{"qty"}, ChunkSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	if r.Differing != 1 || r.DifferingKeys[0] != "12,3" || r.Missing != 1 || r.MissingKeys[0] != "20,7" || r.Extra != 0 {
		t.Fatalf("composite key: %+v", r)
	}
	if r.SourceRows != 210 || r.Chunks != 210/4+1 {
		t.Fatalf("rows %d chunks %d", r.SourceRows, r.Chunks)
	}
}

// A 20,000-row table is verified in bounded chunks: only the one chunk holding the drift is
// read row by row.
func TestBigTableIsWalkedInChunks(t *testing.T) {
	t.Parallel()
	src, rep := setup(t, 20000)
	mustExec(t, rep, "UPDATE orders_copy SET amount = 0 WHERE id = 12345")
	start := time.Now()
	r := run(t, src, rep, 1000)
	t.Logf("verified %d rows in %d chunks in %s", r.SourceRows, r.Chunks, time.Since(start))
	if r.Chunks != 21 || r.DifferingChunks != 1 || r.Differing != 1 || r.DifferingKeys[0] != "12345" || r.Matching != 19999 {
		t.Fatalf("big table: %+v", r)
	}
}

func TestConfigProblemsAreReportedTogether(t *testing.T) {
	t.Parallel()
	_, err := Run(context.Background(), Config{SourceTable: "bad name", KeyColumns: []string{"x;"}, ChunkSize: -1})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"Source and Replica", "table", "column", "ChunkSize"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestMissingTableOrColumn(t *testing.T) {
	t.Parallel()
	src, rep := testenv.NewDatabase(t), testenv.NewDatabase(t)
	mustExec(t, src, "CREATE TABLE t (id INT PRIMARY KEY, a INT)")
	mustExec(t, rep, "CREATE TABLE t (id INT PRIMARY KEY)")
	_, err := Run(context.Background(), Config{Source: src.DB, Replica: rep.DB, SourceTable: "t", KeyColumns: []string{"id"}, Columns: []string{"a"}})
	if err == nil || !strings.Contains(err.Error(), `replica table t has no column "a"`) {
		t.Fatalf("err = %v", err)
	}
	_, err = Run(context.Background(), Config{Source: src.DB, Replica: rep.DB, SourceTable: "t", ReplicaTable: "nope", KeyColumns: []string{"id"}})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v", err)
	}
}
