package publisher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/syncworker/syncworker/outbox"
)

// partition is one leased hash range and the goroutine that sweeps it. Sweeps of a partition
// run one after the other: a sweep publishes a batch, waits for its confirms and settles its
// rows before the next one reads the partition again from the start of its range (or
// publishes rows the watcher handed over, see handoff.go). So no row is read twice while in
// flight, no watermark can pass a row that commits late, and the rows of a key go out in id
// order. Only the DELETE of the confirmed rows runs on in the background (deletions.go); the
// rows it has not removed yet are dropped from later reads.
type partition struct {
	r      *Relay
	no     int
	lo, hi uint32
	token  uint64

	// from is where the next sweep starts reading: lo, or where a sweep that read MaxScan rows
	// without reaching the end of the range stopped. Only the partition's goroutine uses it.
	from uint32

	// lastRead is when the last sweep that read the range started; every SafetySweep at the
	// latest another one does, hand-offs or not. Only the partition's goroutine uses it.
	lastRead time.Time
	tickets  uint64 // the last ticket shown (handoff.go); only the partition's goroutine uses it
	// skip holds, in strict order, the hashes where its reads found a row waiting for a retry,
	// each until the earliest such row there is due. Its reads leave them out (Fetch's Skip):
	// the rows held back behind a waiting row would otherwise be read again by every sweep, and
	// a partition sweeps for every new row while one waits. Every SafetySweep a read without
	// them renews the list. Only the partition's goroutine uses skip and lastFullRead.
	skip         map[uint32]time.Time
	lastFullRead time.Time
	// rowBuf is the array its reads fill, reused while it is busy: growing a new one for every
	// batch was a fifth of a drain's allocations. Emptied after each sweep so it keeps no
	// payload alive, and dropped when the partition waits. Only the partition's goroutine uses it.
	rowBuf []outbox.PendingRow

	validUntil atomic.Int64  // ns since r.start; past it the lease may have expired
	ticket     atomic.Uint64 // non-zero while it waits for work: it may be handed rows (handoff.go)
	// holdsWaiting says, while it waits, that its range holds a row waiting for a retry: the
	// watcher wakes it for new rows instead of reading its range for a hand-off (handoff.go).
	holdsWaiting atomic.Bool
	handoff      chan handoff
	deletions    *deletions // its confirmed rows' DELETEs running in the background
	wake         chan struct{}
	cancel       context.CancelFunc
	done         chan struct{}
}

// startPartition starts sweeping partition no under the lease with token, valid until
// validUntil (ns since r.start). The caller holds r.mu.
func (r *Relay) startPartition(no int, token uint64, validUntil int64) *partition {
	lo, hi := outbox.PartitionRange(no, r.cfg.Partitions)
	ctx, cancel := context.WithCancel(context.Background())
	p := &partition{r: r, no: no, lo: lo, hi: hi, from: lo, token: token, wake: make(chan struct{}, 1),
		handoff: make(chan handoff, 1), deletions: newDeletions(), cancel: cancel, done: make(chan struct{})}
	p.validUntil.Store(validUntil)
	r.parts[no] = p
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(p.done)
		p.run(ctx)
	}()
	return p
}

// stop makes the partition stop publishing; it finishes settling what is in flight.
func (p *partition) stop() { p.cancel() }

func (p *partition) wakeUp() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// leaseValid reports whether the lease is certainly still ours by our own clock. A relay that
// was paused (GC, SIGSTOP) past its lease finds this false before it publishes again.
func (p *partition) leaseValid() bool {
	return int64(time.Since(p.r.start)) < p.validUntil.Load()
}

func (p *partition) run(ctx context.Context) {
	// Its rows are deleted before it is done: the next owner of the lease (after done) would
	// otherwise publish them again.
	defer p.deletions.wait()
	log := p.r.log.With(zap.Int("partition", p.no))
	errWait := 50 * time.Millisecond
	var given []outbox.PendingRow // rows handed over for the next sweep to publish
	// A killed process (the crashed test hook) publishes nothing more: sweeping on until the
	// partition is stopped would publish its unsettled rows again, which a dead relay cannot.
	for ctx.Err() == nil && !p.r.crashed.Load() {
		if !p.leaseValid() {
			// Not renewed in time (database trouble, or we were paused): act only after the lease
			// loop renews it, or stops us.
			p.sleep(ctx, 10*time.Millisecond)
			continue
		}
		published, retryIn, clean, err := p.sweep(ctx, given)
		given = nil
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("sweep failed; retrying", zap.Error(err), zap.Duration("retry_in", errWait))
			p.sleep(ctx, errWait)
			errWait = min(2*errWait, 5*time.Second)
			continue
		}
		errWait = 50 * time.Millisecond
		if (published > 0 && !clean) || !p.leaseValid() {
			continue // busy: sweep again at once (or wait above for the lease to be renewed)
		}
		// A clean partition waits even after publishing: its range held nothing but what it
		// published, and the watcher hands it what comes next.
		wait := p.r.cfg.SafetySweep - time.Since(p.lastRead)
		if wait <= 0 {
			continue // hand-offs kept it from reading its range for SafetySweep
		}
		if retryIn > 0 && retryIn < wait {
			wait = retryIn + time.Millisecond
		}
		p.rowBuf = nil // only a busy partition keeps one: many idle ones would hold BatchSize rows each
		p.holdsWaiting.Store(retryIn > 0)
		given = p.waitForWork(ctx, wait)
	}
}

func (p *partition) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// sweep publishes one batch of the partition, the rows given (handed over by the watcher) or
// else what it reads of its range, and settles it. It returns how many rows it published
// (confirmed or not), when the earliest waiting row becomes ready, and whether the partition is
// clean now: its whole range was read, by this sweep or for the rows given, without anything to
// skip, and every row is confirmed (its DELETE started).
func (p *partition) sweep(ctx context.Context, given []outbox.PendingRow) (int, time.Duration, bool, error) {
	r := p.r
	cfg := &r.cfg
	// read: the range held these rows and nothing else (given rows come from a read of the
	// whole range that found no row waiting for a retry).
	rows, read := given, true
	if given == nil {
		res, whole, err := p.fetch(ctx)
		if err != nil {
			return 0, 0, false, err
		}
		rows, read = res.Rows, whole
		p.rowBuf = rows
		defer clear(rows) // every row's fields, whatever drop below moved: settled by then
		if len(rows) == 0 {
			return 0, res.RetryIn, read, nil
		}
	}
	for i := range rows {
		r.noteSeen(rows[i].ID)
	}
	if rows = p.deletions.drop(rows); len(rows) == 0 {
		return 0, 0, read, nil // all published already, their DELETEs still running
	}
	pc, err := r.conns.channel(ctx, p.no%cfg.Channels)
	if err != nil {
		return 0, 0, false, nil // ctx ended while waiting for the broker; the rows stay as they are
	}

	strict := cfg.Order == OrderStrict
	outcomes := make([]result, len(rows))
	results := make(chan result, len(rows))
	failedKeys := map[string]bool{} // keys with a failed row in this batch
	// In strict order a key whose row is being retried goes one row per sweep until that row
	// is through, so its later rows are not published again with every retry.
	serialKeys := map[string]bool{}
	var perKey map[string]int // publishes per key, when KeyWindow bounds them
	if cfg.KeyWindow > 0 {
		perKey = map[string]int{}
	}
	headers := amqp.Table{} // reused by every row, see publishing
	sent := 0
	var brokerErr error // why publishing stopped early, when the broker was the reason
publishing:
	for i := range rows {
		row := &rows[i]
		outcomes[i].idx = i
		if ctx.Err() != nil || r.crashed.Load() || !p.leaseValid() || r.conns.waitUnblocked(ctx, pc.cork) != nil {
			break
		}
		if (strict && (failedKeys[row.PartitionKey] || serialKeys[row.PartitionKey])) ||
			(perKey != nil && perKey[row.PartitionKey] >= cfg.KeyWindow) {
			outcomes[i].outcome = outcomeHeld // untouched: a later sweep publishes it
			continue
		}
		fail := func(reason string) {
			outcomes[i].outcome, outcomes[i].reason = outcomeFailed, reason
			failedKeys[row.PartitionKey] = true
		}
		if err := r.conns.checkExchange(row.Exchange, pc.cork); err != nil {
			if errors.Is(err, errNoExchange) || errors.Is(err, errExchangeRefused) {
				fail(err.Error())
				continue
			}
			brokerErr = err
			break // the connection is going; the rest stays for the next sweep
		}
		msg, err := publishing(row, cfg.AppID, headers)
		if err != nil {
			fail(err.Error())
			continue
		}
		switch err := pc.publish(ctx, row.Exchange, row.RoutingKey, msg, results, i); {
		case err == nil:
			sent++
			cfg.Metrics.PublishLatency(time.Since(row.WrittenAt))
			if perKey != nil {
				perKey[row.PartitionKey]++
			}
			if strict && row.Attempts > 0 {
				serialKeys[row.PartitionKey] = true
			}
		case ctx.Err() != nil:
			break publishing
		case pc.isDead() || errors.Is(err, amqp.ErrClosed):
			brokerErr = err // it died under this publish: the row stays for the next sweep
			break publishing
		default:
			fail(err.Error())
		}
	}
	// The publishes were held back to leave in as few writes as possible (every wait above
	// flushed them first, since a held-back request gets no answer).
	pc.cork.Flush()

	// Wait for every confirm. The channel is abandoned (its publishes count as lost) when the
	// broker takes longer than ConfirmTimeout, or when shutdown ran out of time.
	timeout := time.NewTimer(cfg.ConfirmTimeout)
	defer timeout.Stop()
	expired, stopping := timeout.C, r.hardStop
	for got := 0; got < sent; {
		select {
		case res := <-results:
			outcomes[res.idx] = res
			got++
		case <-expired:
			expired, stopping = nil, nil
			pc.abort(fmt.Errorf("%w: no confirm within %s", errChannelClosed, cfg.ConfirmTimeout), blameAll)
		case <-stopping:
			expired, stopping = nil, nil
			pc.abort(fmt.Errorf("%w: shutting down", errChannelClosed), blameNone)
		}
	}
	if r.crashed.Load() {
		return sent, 0, false, nil // a killed process settles nothing
	}
	retryIn, cleared := p.settle(rows, outcomes, ctx.Err() != nil)
	if sent == 0 && brokerErr != nil {
		return 0, 0, false, brokerErr // back off briefly instead of idling until the next safety sweep
	}
	return sent, retryIn, read && cleared, nil
}

// fetch reads the next batch of the range, from the start or where a truncated sweep stopped.
// whole says the batch is all the range holds: read from the start to the end, with no row
// skipped for its retry or held back behind one. A hand-off that came too late for its wait is
// dropped first: this read covers its rows.
func (p *partition) fetch(ctx context.Context) (res outbox.FetchResult, whole bool, err error) {
	cfg := &p.r.cfg
	p.dropStaleHandoff()
	// Rows being deleted would fill the read (a drain's next batch would be the last one
	// again): a read of its own starts once they are gone.
	p.deletions.wait()
	p.deletions.forgetFinished()
	now := time.Now()
	p.lastRead = now
	p.r.reads.OwnRead()
	from := p.from
	skip, skipUntil := p.skipped(now)
	fetchCtx, cancel := context.WithTimeout(ctx, dbTimeout)
	res, err = p.r.store.Fetch(fetchCtx, outbox.FetchRequest{
		Lo: p.lo, Hi: p.hi, From: from, Limit: cfg.BatchSize, MaxBytes: cfg.MaxBatchBytes, MaxScan: cfg.MaxScan,
		Strict: cfg.Order == OrderStrict, Into: p.rowBuf, Skip: skip,
	})
	cancel()
	if err != nil {
		return res, false, err
	}
	p.r.scanned.Add(int64(res.Scanned))
	p.noteWaits(now, res.Waits)
	if len(skip) > 0 {
		// The skipped rows wait too: the partition must come back when the first is due.
		if in := skipUntil.Sub(now); res.RetryIn == 0 || in < res.RetryIn {
			res.RetryIn = max(in, time.Millisecond)
		}
	}
	// Rows held back in front must not hide the rows behind them for ever: a sweep that read
	// MaxScan rows without reaching the end leaves the next one (at the next hint, retry or
	// safety sweep, so each costs at most MaxScan rows) to continue from there. Otherwise the
	// next sweep starts again from the start of the range, where late commits are.
	p.from = p.lo
	if res.Truncated {
		p.from = res.Next
	}
	whole = from == p.lo && !res.Truncated && !res.Full && res.RetryIn == 0 && res.Blocked == 0
	return res, whole, nil
}

// skipped returns the hashes the next read leaves out and when the first of them is due: none
// when SafetySweep passed since the last read of everything (that read renews the list).
func (p *partition) skipped(now time.Time) ([]uint32, time.Time) {
	if len(p.skip) == 0 || now.Sub(p.lastFullRead) >= p.r.cfg.SafetySweep {
		clear(p.skip)
		p.lastFullRead = now
		return nil, time.Time{}
	}
	type entry struct {
		hash  uint32
		until time.Time
	}
	due := make([]entry, 0, len(p.skip))
	for h, until := range p.skip {
		if !until.After(now) {
			delete(p.skip, h) // due: read it, retry its row
			continue
		}
		due = append(due, entry{h, until})
	}
	if len(due) > outbox.MaxSkip { // read the ones due soonest; they are the ones to watch
		slices.SortFunc(due, func(a, b entry) int { return b.until.Compare(a.until) })
		due = due[:outbox.MaxSkip]
	}
	hashes := make([]uint32, len(due))
	var first time.Time
	for i, e := range due {
		hashes[i] = e.hash
		if first.IsZero() || e.until.Before(first) {
			first = e.until
		}
	}
	return hashes, first
}

// noteWaits adds the hashes of rows a read found waiting for their retry to skip (strict
// order only: Fetch reports none otherwise).
func (p *partition) noteWaits(now time.Time, waits []outbox.HashWait) {
	for _, w := range waits {
		p.noteWait(w.Hash, now.Add(w.In))
	}
}

// noteWait skips hash until then, or until an earlier row there is due.
func (p *partition) noteWait(hash uint32, until time.Time) {
	if p.skip == nil {
		p.skip = map[uint32]time.Time{}
	}
	if old, ok := p.skip[hash]; !ok || until.Before(old) {
		p.skip[hash] = until
	}
}

// settle starts deleting the confirmed rows (in the background) and records the failed ones,
// in row order so that in strict order a confirmed row after a failed row of its key is held
// back: it is published again after the failed one, so the last copy the broker sees of each
// message is in order. It returns the shortest retry delay it scheduled, and whether every row
// is confirmed. When stopping (shutdown), the database work is bounded by ShutdownTimeout as
// well.
func (p *partition) settle(rows []outbox.PendingRow, outcomes []result, stopping bool) (retryIn time.Duration, cleared bool) {
	r := p.r
	cfg := &r.cfg
	strict := cfg.Order == OrderStrict
	failedKeys := map[string]bool{}
	var done []int64
	var failures []outbox.Failure
	returned, nacked, retried, dead := 0, 0, 0, 0
	now := time.Now()
	for i := range rows {
		row := &rows[i]
		switch o := outcomes[i]; o.outcome {
		case outcomeUnsent, outcomeHeld:
		case outcomeInterrupted:
			failedKeys[row.PartitionKey] = true // published again, so are its key's later rows
		case outcomeAcked:
			if !strict || !failedKeys[row.PartitionKey] {
				done = append(done, row.ID)
			}
		default:
			failedKeys[row.PartitionKey] = true
			switch o.outcome {
			case outcomeReturned:
				returned++
			case outcomeNacked:
				nacked++
			}
			attempts := row.Attempts + 1
			f := outbox.Failure{ID: row.ID, Error: o.reason, Dead: attempts >= cfg.MaxAttempts}
			if f.Dead {
				dead++
				r.log.Warn("message is dead after its last attempt", zap.Int64("outbox_id", row.ID),
					zap.String("message_id", row.MessageID), zap.Int("attempts", attempts), zap.String("error", o.reason))
			} else {
				retried++
				f.Delay = r.retryDelay(attempts)
				if retryIn == 0 || f.Delay < retryIn {
					retryIn = f.Delay
				}
				if strict {
					p.noteWait(row.PartitionHash, now.Add(f.Delay))
				}
			}
			failures = append(failures, f)
		}
	}
	// Settling must outlive the caller's ctx (shutdown), but not forever.
	limit := dbTimeout
	if stopping {
		limit = min(limit, cfg.ShutdownTimeout)
	}
	if len(done) > 0 {
		delCtx, delCancel := context.WithTimeout(context.Background(), limit)
		p.deleteInBackground(done, delCtx, delCancel)
	}
	cleared = len(done) == len(rows)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if len(failures) > 0 {
		if err := retryDB(ctx, func() error { return r.store.RecordFailures(ctx, failures) }); err != nil {
			r.log.Warn("could not record failed publishes; they will be retried without backoff",
				zap.Int("rows", len(failures)), zap.Error(err))
		}
	}
	cfg.Metrics.BatchSize(len(rows))
	cfg.Metrics.Returned(returned)
	cfg.Metrics.Nacked(nacked)
	cfg.Metrics.Retried(retried)
	cfg.Metrics.Dead(dead)
	return retryIn, cleared
}

// dbTimeout bounds one database step of a sweep, so a connection that hangs (a network
// partition without a reset) cannot stall a partition for the kernel's TCP timeout.
const dbTimeout = 30 * time.Second

// retryDB runs f up to a few times while the database is briefly unavailable.
func retryDB(ctx context.Context, f func() error) error {
	wait := 20 * time.Millisecond
	var err error
	for attempt := 0; attempt < 6; attempt++ {
		if err = f(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
	}
	return err
}
