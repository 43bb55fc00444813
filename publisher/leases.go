package publisher

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/syncworker/syncworker/outbox"
)

// runLeases renews, rebalances and takes partition leases every RenewInterval until ctx ends.
//
// Each relay heartbeats its membership, renews what it holds, and aims at an equal share
// (ceil(partitions / live relays)): above it, it hands back its highest partitions; below it,
// it takes free or expired ones. A dead relay's member row and leases expire after LeaseTTL,
// and the others take its partitions at their next tick.
func (r *Relay) runLeases(ctx context.Context) {
	group := r.cfg.leaseGroup()
	ensured := false
	t := time.NewTicker(r.cfg.RenewInterval)
	defer t.Stop()
	for {
		if !ensured {
			if err := r.leases.EnsurePartitions(ctx, group, r.cfg.Partitions); err != nil {
				if ctx.Err() == nil {
					r.log.Warn("could not create lease rows; retrying", zap.Error(err))
				}
			} else {
				ensured = true
			}
		}
		if ensured && !r.crashed.Load() && !r.frozen.Load() {
			// A renewal slower than the lease is worthless; never let a hung connection hold the loop.
			tickCtx, cancel := context.WithTimeout(ctx, r.cfg.LeaseTTL)
			r.leaseTick(tickCtx, group)
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Relay) leaseTick(ctx context.Context, group string) {
	ttl := r.cfg.LeaseTTL
	// The database extends the lease to its NOW()+ttl, which is no earlier than this moment
	// plus ttl; a tenth of the lease is kept as margin for clock rate and the time to act.
	// Count from before the heartbeat and the renewal, so a slow one never eats into the lease.
	started := time.Since(r.start)
	validUntil := int64(started + ttl - ttl/10)
	// The heartbeat comes first: a relay whose member id another live process holds renews,
	// adopts and takes nothing, and hands back what it runs. (Leases are per instance, so it
	// could never renew the other's; but sharing one member row, both would count as one relay
	// and each aim at the whole group's share.)
	err := r.leases.Join(ctx, group, r.cfg.MemberID, r.instance, ttl)
	if inUse := (*outbox.MemberInUseError)(nil); errors.As(err, &inUse) {
		r.memberInUse(ctx, group, inUse)
		return
	}
	if err != nil {
		r.logTick("heartbeat failed", err, ctx)
		return
	}
	r.memberHeld()
	held, err := r.leases.Renew(ctx, group, r.cfg.MemberID, r.instance, ttl)
	if err != nil {
		r.logTick("lease renewal failed", err, ctx)
		return
	}
	r.mu.Lock()
	for no, p := range r.parts {
		if token, ok := held[no]; ok && token == p.token {
			p.validUntil.Store(validUntil)
			continue
		}
		r.log.Warn("lost the lease of a partition", zap.Int("partition", no))
		r.stopPartition(p, nil)
	}
	// A lease this instance holds without a sweeper (an Acquire whose reply was lost) is taken
	// up rather than left to block its partition. Leases of another instance under the same
	// member id (a crashed previous run) are not: they expire, and are acquired afresh.
	for no, token := range held {
		if _, ok := r.parts[no]; !ok && !r.stopping[no] && no < r.cfg.Partitions {
			r.log.Info("adopting a partition this relay leased without sweeping it", zap.Int("partition", no))
			r.startPartition(no, token, validUntil)
		}
	}
	owned := len(r.parts)
	r.mu.Unlock()

	groups, err := r.leases.LiveGroups(ctx)
	if err != nil {
		r.logTick("counting relays failed", err, ctx)
		return
	}
	r.noteOtherGroups(groups, group)
	members := max(groups[group], 1)
	target := (r.cfg.Partitions + members - 1) / members
	switch {
	case owned > target:
		r.releaseExtra(ctx, group, owned-target)
	case owned < target:
		r.acquire(ctx, group, target-owned, validUntil)
	}
}

func (r *Relay) logTick(what string, err error, ctx context.Context) {
	if ctx.Err() == nil {
		r.log.Warn(what+"; partitions pause when their lease runs out", zap.Error(err))
	}
}

// acquire takes up to n free or expired partitions, in random order so that relays starting
// together do not all race for the same ones.
func (r *Relay) acquire(ctx context.Context, group string, n int, validUntil int64) {
	free, err := r.leases.Claimable(ctx, group, r.cfg.Partitions)
	if err != nil {
		r.logTick("listing free partitions failed", err, ctx)
		return
	}
	rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	for _, no := range free {
		if n == 0 || ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		_, mine := r.parts[no]
		settling := r.stopping[no]
		r.mu.Unlock()
		if mine || settling {
			continue // a later tick takes it once its last sweeper is done
		}
		token, ok, err := r.leases.Acquire(ctx, group, r.cfg.MemberID, r.instance, no, r.cfg.LeaseTTL)
		if err != nil {
			r.logTick("acquiring a partition failed", err, ctx)
			return
		}
		if !ok {
			continue
		}
		r.mu.Lock()
		r.startPartition(no, token, validUntil)
		r.mu.Unlock()
		r.log.Info("took partition", zap.Int("partition", no), zap.Uint64("token", token))
		n--
	}
}

// releaseExtra hands back the n highest partitions: each stops publishing, settles what it has
// in flight, and only then gives up its lease, so the next owner starts after it.
func (r *Relay) releaseExtra(ctx context.Context, group string, n int) {
	r.mu.Lock()
	nos := make([]int, 0, len(r.parts))
	for no := range r.parts {
		nos = append(nos, no)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(nos)))
	for _, no := range nos[:n] {
		r.stopPartition(r.parts[no], func(p *partition) {
			bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := r.leases.Release(bg, group, r.cfg.MemberID, r.instance, []int{p.no}); err != nil {
				r.log.Warn("could not release a partition; it expires on its own", zap.Int("partition", p.no), zap.Error(err))
				return
			}
			r.log.Info("released partition to rebalance", zap.Int("partition", p.no))
		})
	}
	r.mu.Unlock()
}

// stopPartition stops p's sweeper and keeps its partition among the stopping ones until the
// sweeper has settled what it had in flight; then it runs after (if not nil). The caller holds
// r.mu.
func (r *Relay) stopPartition(p *partition, after func(*partition)) {
	p.stop()
	delete(r.parts, p.no)
	r.stopping[p.no] = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		<-p.done
		if after != nil {
			after(p)
		}
		r.mu.Lock()
		delete(r.stopping, p.no)
		r.mu.Unlock()
	}()
}
