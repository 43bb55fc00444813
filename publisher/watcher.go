package publisher

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/syncworker/syncworker/outbox"
)

// watchPage bounds the rows one look reads; a full page makes the next look continue after it.
const watchPage = 256

// runWatcher notices new rows for idle partitions within milliseconds at the cost of one
// primary-key probe per look: it reads the ready rows with ids above a lagging mark and reads
// the ranges of the waiting partitions they belong to for them (handoff.go); a partition it
// cannot serve that way is woken to sweep its range.
//
// The mark lags LateCommitWindow behind the newest id seen, so a row whose transaction commits
// after rows with higher ids were published is still seen; a row committing later than that is
// found by its partition's SafetySweep. Each row is offered once, so rows that are held back
// (strict order) do not keep a partition sweeping in vain.
func (r *Relay) runWatcher(ctx context.Context) {
	interval := r.cfg.PollInterval
	var mark, prevMark int64 // rows above mark are looked at; prevMark becomes the next mark
	var cursor int64         // where the next look starts: mark, or after a full page
	rotated := time.Now()
	dealt := map[int64]struct{}{}      // rows offered for a hand-off already (handoff.go)
	pending := map[*partition]uint64{} // hand-offs sent, by partition: the ticket they were for
	for {
		if r.anyIdle() {
			lookCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			woke, next, err := r.look(lookCtx, max(cursor, mark), dealt, pending)
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
			for id := range dealt {
				if id <= mark {
					delete(dealt, id)
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

// look hands over, or wakes the partitions of, the ready rows above from it has not dealt with
// before. It returns where the next look starts: after this page when it was full, else 0
// (back to the mark).
func (r *Relay) look(ctx context.Context, from int64, dealt map[int64]struct{}, pending map[*partition]uint64) (bool, int64, error) {
	woke := false
	tickets := r.openTickets() // before the rows: see handoff.go
	for p, t := range pending {
		if tickets[p] != t {
			delete(pending, p) // taken (or dropped): the partition waits with a new ticket, or not at all
		}
	}
	rows, err := r.store.Watch(ctx, from, watchPage)
	if err != nil {
		return false, 0, err
	}
	var offered []*partition // waiting partitions with new rows, for handOff
	for _, row := range rows {
		r.noteSeen(row.ID)
		if _, done := dealt[row.ID]; done || !row.Ready {
			continue
		}
		r.mu.Lock()
		p := r.parts[outbox.PartitionOf(row.PartitionHash, r.cfg.Partitions)]
		r.mu.Unlock()
		if p == nil {
			continue // not ours
		}
		t, waiting := tickets[p]
		if !waiting || pending[p] == t {
			// Busy, or its hand-off is not taken yet: a later look offers the row (it stays
			// above the mark), or the partition's next sweep reads it.
			continue
		}
		if !slices.Contains(offered, p) {
			offered = append(offered, p)
		}
		dealt[row.ID] = struct{}{}
		woke = true
	}
	if len(offered) > 0 {
		r.handOff(ctx, tickets, offered, pending)
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
		if p.ticket.Load() != 0 {
			return true
		}
	}
	return false
}
