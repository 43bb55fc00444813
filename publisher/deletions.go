package publisher

import (
	"context"
	"sync"

	"go.uber.org/zap"

	"github.com/syncworker/syncworker/outbox"
)

// deletions runs a partition's DELETEs of confirmed rows in the background, so the partition
// takes its next rows while they run instead of after: a DELETE costs a commit, and at moderate
// rates the partition was busy waiting for it when the next rows came.
//
// Until the partition is sure no read can still hold a row being deleted, it drops such rows
// from what it reads or is handed (publishing them again would be a duplicate). An id stays
// known until its DELETE finished *and* the partition then began a read of its own or showed a
// ticket (handoff.go): the watcher reads tickets before rows, so a hand-off for a later ticket
// comes from a read that began after the DELETE. A DELETE that fails leaves its rows to be
// published again, as before, and wakes the partition to do it.
type deletions struct {
	mu       sync.Mutex
	ids      map[int64]bool // true once its DELETE finished
	inFlight sync.WaitGroup
	slots    chan struct{} // bounds the DELETEs running at once, and so the ids kept
}

// maxBackgroundDeletes bounds a partition's DELETEs in flight: at most this many batches'
// ids are kept, and a partition that settles faster than its DELETEs finish waits.
const maxBackgroundDeletes = 4

func newDeletions() *deletions {
	return &deletions{ids: map[int64]bool{}, slots: make(chan struct{}, maxBackgroundDeletes)}
}

// start deletes ids in the background with del, bounded by limit; done reports the outcome.
// It waits while maxBackgroundDeletes are running.
func (d *deletions) start(ids []int64, limit context.Context, del func(ctx context.Context, ids []int64) error, done func(error)) {
	d.slots <- struct{}{}
	d.mu.Lock()
	for _, id := range ids {
		d.ids[id] = false
	}
	d.mu.Unlock()
	d.inFlight.Add(1)
	go func() {
		defer d.inFlight.Done()
		err := del(limit, ids)
		d.mu.Lock()
		for _, id := range ids {
			d.ids[id] = true
		}
		d.mu.Unlock()
		<-d.slots
		done(err)
	}()
}

// forgetFinished drops the ids whose DELETE finished: call it before a read of the
// partition's own begins and before it shows a ticket.
func (d *deletions) forgetFinished() {
	d.mu.Lock()
	for id, finished := range d.ids {
		if finished {
			delete(d.ids, id)
		}
	}
	d.mu.Unlock()
}

// drop returns rows without those being deleted (reusing rows' array).
func (d *deletions) drop(rows []outbox.PendingRow) []outbox.PendingRow {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.ids) == 0 {
		return rows
	}
	kept := rows[:0]
	for _, row := range rows {
		if _, deleting := d.ids[row.ID]; !deleting {
			kept = append(kept, row)
		}
	}
	return kept
}

// wait returns once every DELETE started has finished.
func (d *deletions) wait() { d.inFlight.Wait() }

// deleteInBackground starts the DELETE of the confirmed rows done; settle returns meanwhile.
func (p *partition) deleteInBackground(done []int64, limit context.Context, cancel context.CancelFunc) {
	r := p.r
	p.deletions.start(done, limit, func(ctx context.Context, ids []int64) error {
		return retryDB(ctx, func() error { return r.deleter.delete(ctx, ids) })
	}, func(err error) {
		cancel()
		if err != nil {
			r.log.Warn("could not delete published rows; they will be published again", zap.Int("partition", p.no),
				zap.Int("rows", len(done)), zap.Error(err))
			p.wakeUp()
			return
		}
		r.cfg.Metrics.Published(len(done))
	})
}
