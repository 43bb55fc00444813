package bench

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/syncworker/syncworker/outbox"
)

// prefillChunk is how many messages one outbox.Write (one multi-row INSERT) and one
// transaction carry while pre-filling: fast, and small enough for any max_allowed_packet.
const prefillChunk = 500

// prefill writes n messages for exchange/routingKey into the outbox of db, untimed setup for
// the relay scenarios. Partition keys spread over 1,000 keys, as a busy service's would.
func prefill(ctx context.Context, db *sql.DB, n, payloadSize int, exchange, routingKey string) error {
	payload := make([]byte, payloadSize)
	msgs := make([]outbox.Message, prefillChunk)
	for done := 0; done < n; {
		k := min(prefillChunk, n-done)
		for i := range msgs[:k] {
			msgs[i] = outbox.Message{Exchange: exchange, RoutingKey: routingKey, Type: "bench",
				PartitionKey: fmt.Sprint("k", (done+i)%1000), Payload: payload}
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := outbox.Write(ctx, tx, msgs[:k]...); err != nil {
			tx.Rollback() //nolint:errcheck // the write error matters
			return fmt.Errorf("pre-fill: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("pre-fill: %w", err)
		}
		done += k
	}
	return nil
}
