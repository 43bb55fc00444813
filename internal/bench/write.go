package bench

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/syncworker/syncworker/outbox"
)

// Write measures what writing events adds to a business transaction: the same INSERT-and-COMMIT
// transaction without events, with 1 and with 10 messages through a prepared Writer (the fast
// path the README recommends), and with 10 through the plain outbox.Write, interleaved so that
// disk and cache effects hit all alike. One writer, so each number is one transaction's latency.
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
	prepared, err := outbox.NewPrepared(ctx, db, outbox.Config{})
	if err != nil {
		return nil, err
	}
	defer prepared.Close()
	rounds := max(200, min(o.Messages/10, 2000))
	payload := make([]byte, o.PayloadSize)
	variants := []struct {
		scenario string
		messages int
		write    func(ctx context.Context, tx outbox.Execer, msgs ...outbox.Message) error
		note     string
	}{
		{"write-base", 0, nil, ""},
		{"write-1", 1, prepared.Write, ", outbox.NewPrepared"},
		{"write-10", 10, prepared.Write, ", outbox.NewPrepared"},
		{"write-10-plain", 10, outbox.Write, ", plain outbox.Write (interpolateParams)"},
	}
	samples := make([]latencies, len(variants))
	msgs := make([]outbox.Message, 10)
	for i := range msgs {
		msgs[i] = outbox.Message{Exchange: "orders", RoutingKey: "order.created", Type: "order.created",
			AggregateType: "order", Payload: payload}
	}
	start := time.Now()
	for r := 0; r < rounds; r++ {
		for v, variant := range variants {
			for i := range msgs[:variant.messages] {
				msgs[i].PartitionKey = fmt.Sprint(r)
			}
			t0 := time.Now()
			if err := businessTx(ctx, db, variant.write, msgs[:variant.messages]); err != nil {
				return nil, err
			}
			samples[v] = append(samples[v], time.Since(t0))
		}
	}
	elapsed := time.Since(start)
	base := samples[0].sorted().percentile(50)
	var out []Result
	for v, variant := range variants {
		r := Result{Scenario: variant.scenario, Messages: rounds * variant.messages, Seconds: elapsed.Seconds(),
			MsgsPerS: rate(rounds, elapsed) / float64(len(variants))}
		samples[v].fill(&r)
		if variant.messages == 0 {
			r.Note = fmt.Sprintf("%d transactions without events", rounds)
		} else {
			added := float64(samples[v].sorted().percentile(50)-base) / float64(time.Millisecond)
			r.Note = fmt.Sprintf("adds %.3f ms median per transaction%s", added, variant.note)
		}
		out = append(out, r)
	}
	return out, nil
}

func businessTx(ctx context.Context, db *sql.DB,
	write func(context.Context, outbox.Execer, ...outbox.Message) error, msgs []outbox.Message) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if _, err := tx.ExecContext(ctx, "INSERT INTO bench_orders (customer, total_cents) VALUES (?, ?)", "acme", 1999); err != nil {
		return err
	}
	if len(msgs) > 0 {
		if err := write(ctx, tx, msgs...); err != nil {
			return err
		}
	}
	return tx.Commit()
}
