package bench

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/syncworker/syncworker/outbox"
)

// Write measures what outbox.Write adds to a business transaction: the same INSERT-and-COMMIT
// transaction without events, with 1 and with 10 messages, interleaved so that disk and
// cache effects hit all three alike. One writer, so each number is one transaction's latency.
func Write(ctx context.Context, o Options) ([]Result, error) {
	db, _, cleanup, err := benchDatabase(ctx, o.DSN, "swbench_write_"+uniqueSuffix())
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if _, err := db.ExecContext(ctx, `CREATE TABLE bench_orders (
		id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
		customer VARCHAR(64) NOT NULL, total_cents BIGINT NOT NULL)`); err != nil {
		return nil, err
	}
	rounds := max(200, min(o.Messages/10, 2000))
	payload := make([]byte, o.PayloadSize)
	variants := []int{0, 1, 10}
	samples := make([]latencies, len(variants))
	msgs := make([]outbox.Message, 10)
	for i := range msgs {
		msgs[i] = outbox.Message{Exchange: "orders", RoutingKey: "order.created", Type: "order.created",
			AggregateType: "order", Payload: payload}
	}
	start := time.Now()
	for r := 0; r < rounds; r++ {
		for v, n := range variants {
			for i := range msgs[:n] {
				msgs[i].PartitionKey = fmt.Sprint(r)
			}
			t0 := time.Now()
			if err := businessTx(ctx, db, msgs[:n]); err != nil {
				return nil, err
			}
			samples[v] = append(samples[v], time.Since(t0))
		}
	}
	elapsed := time.Since(start)
	base := samples[0].sorted().percentile(50)
	var out []Result
	for v, n := range variants {
		r := Result{Scenario: fmt.Sprintf("write-%d", n), Messages: rounds * n, Seconds: elapsed.Seconds(),
			MsgsPerS: rate(rounds, elapsed) / float64(len(variants))}
		samples[v].fill(&r)
		if n == 0 {
			r.Scenario, r.Note = "write-base", fmt.Sprintf("%d transactions without events", rounds)
		} else {
			added := float64(samples[v].sorted().percentile(50)-base) / float64(time.Millisecond)
			r.Note = fmt.Sprintf("adds %.3f ms median per transaction", added)
		}
		out = append(out, r)
	}
	return out, nil
}

func businessTx(ctx context.Context, db *sql.DB, msgs []outbox.Message) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if _, err := tx.ExecContext(ctx, "INSERT INTO bench_orders (customer, total_cents) VALUES (?, ?)", "acme", 1999); err != nil {
		return err
	}
	if err := outbox.Write(ctx, tx, msgs...); err != nil {
		return err
	}
	return tx.Commit()
}
