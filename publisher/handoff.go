package publisher

import (
	"cmp"
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/syncworker/syncworker/outbox"
)

// Hand-off: at moderate rates most sweeps would find a row or two that the watcher has just
// seen. Instead, the watcher reads the ranges of the waiting partitions it saw new rows for, all
// in one statement (outbox.FetchRanges), and hands each its rows; the partitions publish them
// without a read of their own. What the watcher reads of a range is exactly what the
// partition's next sweep would have read, in the same order, so order and late commits are
// handled as by any sweep; a range holding a row that waits for a retry, or too large to read
// whole, is left to the partition's own sweep; so is a partition whose last sweep found such a
// row (partition.holdsWaiting): the watcher wakes it without reading its range.
//
// The protocol that keeps a row from being published twice: a waiting partition shows a
// ticket (a number it never shows again). The watcher reads the tickets before it reads the
// rows; a partition with a ticket had already settled its last sweep, so rows read afterwards
// are rows it has not published, or published rows whose DELETE it started and drops
// (deletions.go). The partition takes a hand-off only while it still waits with
// that ticket, that is before any sweep of its own; a hand-off for an older ticket is stale and
// makes it sweep its range instead.

// handoff is rows the watcher read for a partition, for the wait that showed ticket.
type handoff struct {
	ticket uint64
	rows   []outbox.PendingRow
}

// waitForWork waits up to wait for a reason to sweep: a wake-up, a hand-off, the timer, showing
// a ticket meanwhile. It returns the rows handed over, or nil when the next sweep must read the
// range.
func (p *partition) waitForWork(ctx context.Context, wait time.Duration) []outbox.PendingRow {
	p.tickets++
	ticket := p.tickets
	p.deletions.forgetFinished() // a read for this ticket begins after those DELETEs finished
	p.ticket.Store(ticket)
	t := time.NewTimer(wait)
	var given []outbox.PendingRow
	select {
	case <-ctx.Done():
	case <-p.wake:
	case h := <-p.handoff:
		if h.ticket == ticket {
			given = h.rows
			p.r.reads.HandOff(len(given))
		} // else stale: sweeping the range reads its rows
	case <-t.C:
	}
	t.Stop()
	p.ticket.Store(0)
	return given
}

// dropStaleHandoff discards a hand-off that arrived after the wait it was meant for, before a
// sweep that reads the range (and so its rows) anyway; it would otherwise block the next one.
func (p *partition) dropStaleHandoff() {
	select {
	case <-p.handoff:
	default:
	}
}

// openTickets returns the tickets of the waiting partitions, read before the watcher looks for
// rows (see the protocol above).
func (r *Relay) openTickets() map[*partition]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var open map[*partition]uint64
	for _, p := range r.parts {
		if t := p.ticket.Load(); t != 0 {
			if open == nil {
				open = map[*partition]uint64{}
			}
			open[p] = t
		}
	}
	return open
}

// handOff reads the ranges of the partitions offered (waiting when their tickets were read,
// with new rows the watcher saw) in one statement and hands each partition what it
// holds: everything in its range, so exactly what a sweep of its own would have read. A
// partition whose range was not read to its end (the read stopped at BatchSize rows or
// MaxBatchBytes) or holds a row waiting for a retry is woken to sweep instead, as is every one
// of them when the read fails. pending records the hand-offs sent. A partition for whose range
// worth returns false is left alone (nil: every partition is served).
func (r *Relay) handOff(ctx context.Context, tickets map[*partition]uint64, offered []*partition, pending map[*partition]uint64,
	worth func(outbox.RangeRows) bool) {
	slices.SortFunc(offered, func(a, b *partition) int { return cmp.Compare(a.lo, b.lo) })
	ranges := make([]outbox.HashRange, len(offered))
	for i, p := range offered {
		ranges[i] = outbox.HashRange{Lo: p.lo, Hi: p.hi}
	}
	r.rangeReads.Add(1)
	got, err := r.store.FetchRanges(ctx, ranges, r.cfg.BatchSize, r.cfg.MaxBatchBytes)
	if err != nil && ctx.Err() == nil {
		r.log.Warn("reading partitions with new rows failed; they sweep instead", zap.Error(err))
	}
	for i, p := range offered {
		if err == nil && worth != nil && !worth(got[i]) {
			continue
		}
		if err == nil && got[i].Complete && !got[i].Waiting {
			if len(got[i].Rows) == 0 {
				continue // the rows seen are gone already: nothing to do
			}
			select {
			case p.handoff <- handoff{ticket: tickets[p], rows: got[i].Rows}:
				pending[p] = tickets[p]
				continue
			default: // a stale hand-off fills the slot: let a sweep do it
			}
		}
		p.wakeUp()
	}
}
