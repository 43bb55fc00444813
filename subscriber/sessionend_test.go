package subscriber

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/naming"
	"github.com/syncworker/syncworker/internal/testenv"
)

// When a move fails and ends the session, the other lanes' batches are moving their own
// failures at that moment (their publishes wait for the mover, one batch at a time). Those
// moves must finish and be acked before the consumer is cancelled: abandoning a move whose
// publish went out before its confirm came back leaves the delivery unacked, and its
// redelivery is moved a second time.
func TestAFailedMoveLetsTheOtherLanesFinishTheirMoves(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var transient atomic.Int32
	cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
		if strings.HasPrefix(msg.ID, "transient") {
			transient.Add(1)
			return errors.New("fails for now")
		}
		return fmt.Errorf("bad data: %w", ErrPermanent)
	})
	cfg.RetryDelays = []time.Duration{7 * time.Second} // no such tier declared: that move fails
	// Every lane fills a batch of 10 failures; one of them holds the failure whose move fails.
	cfg.Concurrency, cfg.BatchSize, cfg.Prefetch, cfg.FlushInterval = 4, 10, 400, 300*time.Millisecond
	const permanent = 200
	var ids []string
	f.publish("transient", "k-t", "test", []byte("y"))
	for i := range permanent {
		ids = append(ids, fmt.Sprintf("permanent-%d", i))
		f.publish(ids[i], fmt.Sprintf("k-%d", i), "test", []byte("x"))
	}
	_, stop := f.start(f.db.DB, cfg)
	copies := map[string]int{}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n := transient.Load()
		return n >= 4, fmt.Sprintf("the failing move ended %d sessions, want 4", n)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, d := range f.getAll(naming.ParkingLot(f.queue)) {
		copies[d.MessageId]++
	}
	dups := 0
	for id, n := range copies {
		if n != 1 || strings.HasPrefix(id, "transient") {
			dups++
			if dups <= 10 {
				t.Errorf("parking lot holds %d copies of %s", n, id)
			}
		}
	}
	if len(copies) == 0 {
		t.Errorf("nothing parked")
	}
	if dups > 0 {
		t.Errorf("%d messages parked more than once (%d failed moves ended sessions)", dups, transient.Load())
	}
}
