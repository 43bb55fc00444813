package publisher

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/syncworker/syncworker/outbox"
)

// watchPage bounds the rows one look reads; a full page makes the next look continue after it.
const watchPage = 256

// runWatcher notices new rows for idle partitions within milliseconds at the cost of one
// primary-key probe per look: it reads the ready rows with ids above a lagging mark and wakes
// the idle partitions they belong to. It is only a hint; the partitions decide what to publish
// by sweeping their whole range.
//
// The mark lags LateCommitWindow behind the newest id seen, so a row whose transaction commits
// after rows with higher ids were published is still seen; a row committing later than that is
// found by its partition's SafetySweep. Each row wakes its partition once, so rows that are
// held back (strict order) do not keep a partition sweeping in vain.
func (r *Relay) runWatcher(ctx context.Context) {
	interval := r.cfg.PollInterval
	var mark, prevMark int64 // rows above mark are looked at; prevMark becomes the next mark
	var cursor int64         // where the next look starts: mark, or after a full page
	rotated := time.Now()
	hinted := map[int64]struct{}{}
	for {
		if r.anyIdle() {
			lookCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			woke, next, err := r.look(lookCtx, max(cursor, mark), hinted)
			cancel()
			cursor = next
			switch {
			case err != nil && ctx.Err() == nil:
				r.log.Warn("looking for new rows failed", zap.Error(err))
				interval = r.cfg.PollInterval
			case woke:
				interval = time.Millisecond
			default:
				interval = min(2*interval, r.cfg.PollInterval)
			}
		}
		if time.Since(rotated) >= r.cfg.LateCommitWindow {
			mark, prevMark = prevMark, r.seen.Load()
			rotated = time.Now()
			for id := range hinted {
				if id <= mark {
					delete(hinted, id)
				}
			}
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.notifyCh:
			interval = time.Millisecond
		case <-t.C:
		}
		t.Stop()
	}
}

// look wakes the idle partitions that have ready rows above from not hinted before. It returns
// where the next look starts: after this page when it was full, else 0 (back to the mark).
func (r *Relay) look(ctx context.Context, from int64, hinted map[int64]struct{}) (bool, int64, error) {
	woke := false
	rows, err := r.store.Watch(ctx, from, watchPage)
	if err != nil {
		return false, 0, err
	}
	for _, row := range rows {
		r.noteSeen(row.ID)
		if _, done := hinted[row.ID]; done || !row.Ready {
			continue
		}
		r.mu.Lock()
		p := r.parts[outbox.PartitionOf(row.PartitionHash, r.cfg.Partitions)]
		r.mu.Unlock()
		if p == nil || !p.idle.Load() {
			continue // not ours, or busy: its next sweep reads the row anyway
		}
		hinted[row.ID] = struct{}{}
		p.wakeUp()
		woke = true
	}
	if len(rows) == watchPage {
		return woke, rows[len(rows)-1].ID, nil
	}
	return woke, 0, nil
}

// anyIdle reports whether some owned partition is waiting for work.
func (r *Relay) anyIdle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.parts {
		if p.idle.Load() {
			return true
		}
	}
	return false
}
