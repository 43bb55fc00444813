package publisher

import (
	"maps"
	"time"

	"go.uber.org/zap"
)

// Relays of another lease group on the same tables (another Group, or another Partitions: the
// lease group is "group/partitions") lease partitions of their own and publish every row of the
// outbox too: each message goes out once per group, and a key's rows are no longer published
// by one sweeper in order. That happens when a deployment changes relay.partitions while old
// relays still run. The lease loop notices it in the statement that counts the live relays,
// and says so.

// otherGroupsLogEvery bounds how often a relay repeats that another group runs.
const otherGroupsLogEvery = time.Minute

// noteOtherGroups records the live relays of groups other than group, from LiveGroups, and
// logs an error when there are any: at once, then at most every otherGroupsLogEvery. Only the
// lease loop calls it.
func (r *Relay) noteOtherGroups(groups map[string]int, group string) {
	others := maps.Clone(groups)
	delete(others, group)
	r.otherGroups.Store(&others)
	if len(others) == 0 {
		r.otherGroupsLogged = time.Time{}
		return
	}
	if time.Since(r.otherGroupsLogged) < otherGroupsLogEvery {
		return
	}
	r.otherGroupsLogged = time.Now()
	r.log.Error("relays of another lease group publish this outbox too: every message goes out once per group, "+
		"and per-key order is lost; run one group (the same relay.group and relay.partitions on every relay), "+
		"and stop every relay before changing either (if they publish another outbox table, give them their own lease tables)",
		zap.Any("other_groups", others))
}

// OtherGroups returns how many live relays each other lease group ("group/partitions") has on
// this relay's lease tables; empty when there are none, as there should be.
func (r *Relay) OtherGroups() map[string]int {
	if p := r.otherGroups.Load(); p != nil {
		return maps.Clone(*p)
	}
	return map[string]int{}
}
