// Package publisher is the relay: it moves committed outbox rows into RabbitMQ with publisher
// confirms and deletes each row only after the broker confirmed it and did not return it.
//
// Partitions (contiguous ranges of the partition-key hash) are leased in MySQL and spread over
// the live relays of a group; each owned partition is swept by its own goroutine, and the
// sweeps publish over a few confirm-mode channels with a bounded window of outstanding
// confirms each. See README.md for the design, the failure handling and the knobs.
package publisher

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/syncworker/syncworker/outbox"
)

// Relay drains one outbox into RabbitMQ. Create it with New and start it with Run.
type Relay struct {
	cfg     Config
	log     *zap.Logger
	store   *outbox.RelayStore
	deleter *deleter // the partitions' DELETEs of published rows, merged when they coincide
	leases  *outbox.LeaseStore
	conns   *connManager
	start   time.Time // the monotonic origin of lease deadlines
	// instance tells this process apart from another relay given the same MemberID: the
	// membership row and the leases record it.
	instance string
	conflict atomic.Pointer[memberConflict] // non-nil while another instance holds MemberID
	// conflictLogged is when the lease loop last logged a running relay with our member id.
	conflictLogged    time.Time
	otherGroups       atomic.Pointer[map[string]int] // live relays of other lease groups (groups.go)
	otherGroupsLogged time.Time                      // when the lease loop last said so

	mu    sync.Mutex
	parts map[int]*partition // partitions this relay holds and sweeps
	// stopping holds partitions whose sweeper was stopped and is still settling: handed back
	// (still leased, renewals extend them, until it is done) or lost. None is taken again
	// before its sweeper is done: a second sweeper would publish the rows whose DELETE the
	// first one still runs.
	stopping map[int]bool
	wg       sync.WaitGroup // partition goroutines, including ones being released

	notifyCh chan struct{}
	hardStop chan struct{} // closed when the shutdown wait for confirms is over
	running  atomic.Bool
	crashed  atomic.Bool // test hook: stop like a killed process (no settling, no release)
	frozen   atomic.Bool // test hook: the lease loop does nothing, as in a paused process
	seen     atomic.Int64
	// counted for tests: the watcher's looks, its reads of ranges for hand-offs, and the rows
	// the partitions' own reads scanned
	looks, rangeReads, scanned atomic.Int64
	reads                      ReadMetrics // cfg.Metrics if it implements ReadMetrics, else NopMetrics
}

// New returns a relay for cfg, or every problem with cfg.
func New(cfg Config) (*Relay, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("publisher: invalid config: %w", err)
	}
	store, err := outbox.NewRelayStore(cfg.DB, cfg.Tables)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	leases, err := outbox.NewLeaseStore(cfg.DB, cfg.Tables)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	if cfg.AMQP.Name == "" {
		cfg.AMQP.Name = "syncworker relay " + cfg.MemberID
	}
	instance := uuid.NewString()
	log := cfg.Logger.With(zap.String("relay", cfg.MemberID), zap.String("instance", instance), zap.String("group", cfg.Group))
	reads, ok := cfg.Metrics.(ReadMetrics)
	if !ok {
		reads = NopMetrics{}
	}
	deleteRows := func(ctx context.Context, ids []int64) error {
		err := store.Delete(ctx, ids)
		if err == nil {
			reads.DeleteStatement(len(ids))
		}
		return err
	}
	return &Relay{
		cfg:      cfg,
		log:      log,
		store:    store,
		deleter:  &deleter{del: deleteRows},
		reads:    reads,
		leases:   leases,
		conns:    newConnManager(cfg.AMQP, cfg.Channels, cfg.Window, cfg.Metrics, log),
		start:    time.Now(),
		instance: instance,
		parts:    map[int]*partition{},
		stopping: map[int]bool{},
		notifyCh: make(chan struct{}, 1),
		hardStop: make(chan struct{}),
	}, nil
}

// MemberID is the name this relay has in its group's lease table.
func (r *Relay) MemberID() string { return r.cfg.MemberID }

// Notify wakes the relay's idle partitions to look for new rows now. A process that embeds the
// relay calls it right after committing outbox rows, which takes the polling delay out of the
// latency. It never blocks and is safe to call from any goroutine, as often as wanted.
func (r *Relay) Notify() {
	select {
	case r.notifyCh <- struct{}{}:
	default:
	}
}

// Owned returns the partitions this relay holds a lease on that it still trusts (renewed in
// time): the ones it publishes. A partition whose renewals failed drops out before another
// relay may take it, though its sweeper runs on until a renewal says whether it was lost.
func (r *Relay) Owned() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int, 0, len(r.parts))
	for no := 0; no < r.cfg.Partitions; no++ {
		if p, ok := r.parts[no]; ok && p.leaseValid() {
			out = append(out, no)
		}
	}
	return out
}

// Run relays until ctx ends, then stops claiming rows, waits up to ShutdownTimeout for the
// outstanding confirms, settles their rows, releases its leases and returns nil. Losing the
// database or the broker never stops it: it reconnects and carries on.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("publisher: Run called twice")
	}
	r.log.Info("relay starting", zap.Int("partitions", r.cfg.Partitions), zap.Int("channels", r.cfg.Channels),
		zap.Stringer("order", r.cfg.Order))
	connCtx, closeConn := context.WithCancel(context.WithoutCancel(ctx))
	connDone := make(chan struct{})
	go func() {
		defer close(connDone)
		r.conns.run(connCtx)
	}()

	var loops sync.WaitGroup
	for _, loop := range []func(context.Context){r.runLeases, r.runWatcher, r.runStats} {
		loops.Add(1)
		go func() {
			defer loops.Done()
			loop(ctx)
		}()
	}
	<-ctx.Done()
	loops.Wait()

	// Shutdown: stop every partition (no new publishes), give outstanding confirms a bounded
	// time, then hand the partitions back.
	if r.crashed.Load() {
		close(r.hardStop)
		closeConn()
	} else {
		// Past the timeout the connection goes too, which also frees a publish stuck in a
		// TCP write to a broker that stopped reading.
		timer := time.AfterFunc(r.cfg.ShutdownTimeout, func() {
			close(r.hardStop)
			closeConn()
		})
		defer timer.Stop()
	}
	r.mu.Lock()
	var owned []int
	for no, p := range r.parts {
		p.stop()
		owned = append(owned, no)
	}
	r.parts = map[int]*partition{}
	r.mu.Unlock()
	r.wg.Wait()
	r.deleter.wait() // a DELETE a stopped partition stopped waiting for
	if !r.crashed.Load() {
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := r.leases.Release(bg, r.cfg.leaseGroup(), r.cfg.MemberID, r.instance, owned); err != nil {
			r.log.Warn("could not release leases; they expire on their own", zap.Error(err))
		}
		if err := r.leases.Leave(bg, r.cfg.leaseGroup(), r.cfg.MemberID, r.instance); err != nil {
			r.log.Warn("could not leave the relay group; membership expires on its own", zap.Error(err))
		}
		cancel()
	}
	closeConn()
	<-connDone
	r.log.Info("relay stopped")
	return nil
}

// noteSeen records the highest outbox id the relay has read, for the watcher.
func (r *Relay) noteSeen(id int64) {
	for {
		cur := r.seen.Load()
		if id <= cur || r.seen.CompareAndSwap(cur, id) {
			return
		}
	}
}

// runStats samples the backlog for Metrics every StatsInterval.
func (r *Relay) runStats(ctx context.Context) {
	if r.cfg.StatsInterval < 0 {
		return
	}
	t := time.NewTicker(r.cfg.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		statsCtx, cancel := context.WithTimeout(ctx, dbTimeout)
		backlog, oldest, err := r.store.Stats(statsCtx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("could not sample the outbox backlog", zap.Error(err))
			}
			continue
		}
		r.cfg.Metrics.Backlog(backlog)
		r.cfg.Metrics.OldestPendingAge(oldest)
	}
}
