package publisher

import (
	"context"
	"slices"
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
	batches  []*deleteBatch // the DELETEs not forgotten yet, oldest first
	inFlight sync.WaitGroup
	slots    chan struct{} // bounds the DELETEs running at once, and so the ids kept
}

// deleteBatch is the ids of one DELETE, sorted. They are the slice the DELETE itself runs
// with, so keeping them known costs no memory of its own (a set of ids did: ~40 bytes a row).
type deleteBatch struct {
	ids      []int64
	finished bool
}

func (b *deleteBatch) holds(id int64) bool {
	_, found := slices.BinarySearch(b.ids, id)
	return found
}

// maxBackgroundDeletes bounds a partition's DELETEs in flight: at most this many batches'
// ids are kept, and a partition that settles faster than its DELETEs finish waits.
const maxBackgroundDeletes = 4

func newDeletions() *deletions {
	return &deletions{slots: make(chan struct{}, maxBackgroundDeletes)}
}

// start deletes ids in the background with del, bounded by limit; done reports the outcome.
// It sorts ids and keeps them until forgotten, so the caller must not change them. It waits
// while maxBackgroundDeletes are running.
func (d *deletions) start(ids []int64, limit context.Context, del func(ctx context.Context, ids []int64) error, done func(error)) {
	d.slots <- struct{}{}
	slices.Sort(ids)
	batch := &deleteBatch{ids: ids}
	d.mu.Lock()
	d.batches = append(d.batches, batch)
	d.mu.Unlock()
	d.inFlight.Add(1)
	go func() {
		defer d.inFlight.Done()
		err := del(limit, ids)
		d.mu.Lock()
		batch.finished = true
		d.mu.Unlock()
		<-d.slots
		done(err)
	}()
}

// forgetFinished drops the ids whose DELETE finished: call it before a read of the
// partition's own begins and before it shows a ticket.
func (d *deletions) forgetFinished() {
	d.mu.Lock()
	d.batches = slices.DeleteFunc(d.batches, func(b *deleteBatch) bool { return b.finished })
	d.mu.Unlock()
}

// drop returns rows without those being deleted (reusing rows' array).
func (d *deletions) drop(rows []outbox.PendingRow) []outbox.PendingRow {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.batches) == 0 {
		return rows
	}
	return slices.DeleteFunc(rows, func(row outbox.PendingRow) bool {
		return slices.ContainsFunc(d.batches, func(b *deleteBatch) bool { return b.holds(row.ID) })
	})
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
