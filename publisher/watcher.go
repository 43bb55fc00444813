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
	pace := lookPace{interval: r.cfg.PollInterval, quietSince: time.Now()}
	var mark, prevMark int64  // rows above mark are looked at; prevMark becomes the next mark
	var cursor int64          // where the next look starts: mark, or after a full page
	var rangesUntil time.Time // until then looks read the waiting partitions' ranges, see lookRanges
	rotated := time.Now()
	dealt := map[int64]struct{}{}      // rows offered for a hand-off already (handoff.go)
	pending := map[*partition]uint64{} // hand-offs sent, by partition: the ticket they were for
	for {
		if r.anyIdle() {
			r.looks.Add(1)
			lookCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			var woke bool
			var err error
			if time.Now().Before(rangesUntil) {
				woke = r.lookRanges(lookCtx, dealt, pending)
			} else {
				var backlog bool
				woke, cursor, backlog, err = r.look(lookCtx, max(cursor, mark), dealt, pending)
				if backlog {
					rangesUntil, cursor = time.Now().Add(r.cfg.LateCommitWindow), 0
				}
			}
			cancel()
			if err != nil && ctx.Err() == nil {
				r.log.Warn("looking for new rows failed", zap.Error(err))
			}
			pace.looked(woke, err != nil, time.Now(), &r.cfg)
		} else {
			pace.busy(time.Now())
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
		t := time.NewTimer(pace.interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.notifyCh:
			pace.notified(time.Now())
		case <-t.C:
		}
		t.Stop()
	}
}

// idleAfter is how long the watcher's looks must find nothing before they slow down from
// PollInterval towards IdlePollInterval.
const idleAfter = time.Second

// lookPace is how long the watcher waits before its next look: 1 ms after a look that found
// work (more is likely on its way), doubling after each look that found nothing up to
// PollInterval, and once nothing has been found for idleAfter, on up to IdlePollInterval. On
// a slow machine each look costs the relay and the database about half a millisecond of CPU
// each: 200 looks a second keep both a tenth busy, 40 a fiftieth, while a quiet relay gains
// little from noticing the first row after a lull within 5 ms instead of 25.
type lookPace struct {
	interval   time.Duration
	quietSince time.Time // since when the looks found nothing
}

// looked sets the wait after a look that woke partitions (found work) or failed.
func (p *lookPace) looked(woke, failed bool, now time.Time, cfg *Config) {
	switch {
	case failed:
		p.interval = cfg.PollInterval
	case woke:
		p.interval, p.quietSince = time.Millisecond, now
	case now.Sub(p.quietSince) >= idleAfter:
		p.interval = min(2*p.interval, cfg.IdlePollInterval)
	default:
		p.interval = min(2*p.interval, cfg.PollInterval)
	}
}

// notified sets the wait after Relay.Notify: rows were just committed.
func (p *lookPace) notified(now time.Time) {
	p.interval, p.quietSince = time.Millisecond, now
}

// busy notes that every partition is sweeping (the watcher does not look): that is activity
// too, so the first quiet looks after it stay at PollInterval for idleAfter.
func (p *lookPace) busy(now time.Time) { p.quietSince = now }

// look hands over, or wakes the partitions of, the ready rows above from it has not dealt with
// before. It returns where the next look starts: after this page when it was full, else 0
// (back to the mark); and backlog when the page was full without a row for a waiting
// partition: the busy partitions have a backlog above the mark.
func (r *Relay) look(ctx context.Context, from int64, dealt map[int64]struct{}, pending map[*partition]uint64) (woke bool, next int64, backlog bool, err error) {
	tickets := r.waitingTickets(pending) // before the rows: see handoff.go
	rows, err := r.store.Watch(ctx, from, watchPage)
	if err != nil {
		return false, 0, false, err
	}
	r.reads.Watched(len(rows))
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
		if p.holdsWaiting.Load() {
			// Reading its range would only find the row waiting for its retry and wake it, after
			// reading every such row: wake it now, its sweep reads the range once.
			p.wakeUp()
			dealt[row.ID] = struct{}{}
			woke = true
			continue
		}
		if !slices.Contains(offered, p) {
			offered = append(offered, p)
		}
		dealt[row.ID] = struct{}{}
		woke = true
	}
	if len(offered) > 0 {
		r.handOff(ctx, tickets, offered, pending, nil)
	}
	if len(rows) == watchPage {
		return woke, rows[len(rows)-1].ID, !woke, nil
	}
	return woke, 0, false, nil
}

// lookRanges reads the ranges of the waiting partitions themselves, in one statement, and hands
// over or wakes those holding ready rows it has not dealt with before. The watcher looks this
// way for a LateCommitWindow after a look found a full page of rows for busy partitions only:
// walking the rows above the mark then read the busy partitions' backlog again on every look
// while one partition waited (in a drain, more rows than the partitions read themselves). A
// range read sees every row of the range, so nothing a waiting partition needs is missed.
func (r *Relay) lookRanges(ctx context.Context, dealt map[int64]struct{}, pending map[*partition]uint64) bool {
	tickets := r.waitingTickets(pending) // before the rows: see handoff.go
	var waiting []*partition
	for p, t := range tickets {
		if pending[p] != t {
			waiting = append(waiting, p)
		}
	}
	if len(waiting) == 0 {
		return false
	}
	woke := false
	// A failed read is logged by handOff, which then wakes every partition to sweep instead.
	r.handOff(ctx, tickets, waiting, pending, func(got outbox.RangeRows) bool {
		r.reads.Watched(len(got.Rows))
		fresh := false
		for _, row := range got.Rows {
			if _, done := dealt[row.ID]; !done {
				dealt[row.ID] = struct{}{}
				fresh = true
			}
		}
		woke = woke || fresh
		return fresh // rows offered before (held back, or their hand-off was taken) wake nobody again
	})
	return woke
}

// waitingTickets returns the tickets of the waiting partitions and forgets the hand-offs sent
// for tickets they no longer show.
func (r *Relay) waitingTickets(pending map[*partition]uint64) map[*partition]uint64 {
	tickets := r.openTickets()
	for p, t := range pending {
		if tickets[p] != t {
			delete(pending, p) // taken (or dropped): the partition waits with a new ticket, or not at all
		}
	}
	return tickets
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
