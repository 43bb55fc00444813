package publisher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/syncworker/syncworker/outbox"
)

// conflictLogEvery bounds how often a relay repeats that another running relay has its member id.
const conflictLogEvery = time.Minute

// memberConflict is what a relay knows while another instance holds its member id.
type memberConflict struct {
	holder string
	// heldUntil is the holder's expiry as first seen (outbox.MemberInUseError.HeldUntil). A
	// row that is never renewed is a dead process's: a restart after a crash waits for it. A
	// row renewed since belongs to a relay that is running.
	heldUntil int64
	live      bool
	err       error
}

// ErrMemberIDInUse is what MemberConflict wraps while another relay process holds this relay's
// member id.
var ErrMemberIDInUse = errors.New("member id in use by another relay")

// MemberConflict returns nil while this relay holds its member id in the group (or has not
// heartbeated yet), and otherwise an error wrapping ErrMemberIDInUse that says which relay
// instance holds it. Such a relay holds no partitions and publishes nothing until the holder's
// heartbeat expires; then it takes partitions as usual.
func (r *Relay) MemberConflict() error {
	if c := r.conflict.Load(); c != nil {
		return c.err
	}
	return nil
}

// Instance is this relay process's random id, which tells it apart from another process
// started with the same MemberID.
func (r *Relay) Instance() string { return r.instance }

// memberInUse handles a heartbeat refused because another instance holds the member id: the
// relay hands back whatever partitions it runs, and says what is wrong, once per change of
// state and then at most every conflictLogEvery.
func (r *Relay) memberInUse(ctx context.Context, group string, e *outbox.MemberInUseError) {
	holder := e.Holder
	if holder == "" {
		holder = "of a relay from before instance ids"
	}
	prev := r.conflict.Load()
	switch {
	case prev == nil || prev.holder != e.Holder:
		c := &memberConflict{holder: e.Holder, heldUntil: e.HeldUntil}
		c.err = fmt.Errorf("%w: member id %q is held by relay instance %s, whose heartbeat expires in %s "+
			"unless it is renewed; this relay publishes nothing until then (after a crash that is the previous "+
			"run of this relay; if another relay with this member id is running, give each relay its own --member-id)",
			ErrMemberIDInUse, r.cfg.MemberID, holder, e.ExpiresIn.Round(time.Millisecond))
		r.conflict.Store(c)
		r.log.Warn("waiting for this relay's member id", zap.Error(c.err))
	case !prev.live && e.HeldUntil != prev.heldUntil:
		c := &memberConflict{holder: e.Holder, heldUntil: prev.heldUntil, live: true}
		c.err = fmt.Errorf("%w: member id %q is in use by another running relay (instance %s); this relay "+
			"publishes nothing until that one stops; give each relay its own --member-id (relay.member_id), "+
			"or leave it unset for a unique default", ErrMemberIDInUse, r.cfg.MemberID, holder)
		r.conflict.Store(c)
		r.log.Error("two relays run with one member id", zap.Error(c.err))
		r.conflictLogged = time.Now()
	case prev.live && time.Since(r.conflictLogged) >= conflictLogEvery:
		r.log.Error("two relays run with one member id", zap.Error(prev.err))
		r.conflictLogged = time.Now()
	}
	r.mu.Lock()
	n := len(r.parts)
	r.mu.Unlock()
	if n > 0 {
		r.log.Warn("handing back every partition: another relay instance holds this relay's member id", zap.Int("partitions", n))
		r.releaseExtra(ctx, group, n)
	}
}

// memberHeld notes a heartbeat that holds the member id, ending a conflict.
func (r *Relay) memberHeld() {
	if prev := r.conflict.Swap(nil); prev != nil {
		r.log.Info("this relay holds its member id now; taking partitions", zap.String("previous_instance", prev.holder))
	}
}
