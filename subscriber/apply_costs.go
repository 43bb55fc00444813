package subscriber

import (
	"sync"
	"time"
)

// applyCosts estimates, from the batches applied so far, how long the handlers take per
// message and what a transaction costs besides them (BEGIN, the inbox insert, COMMIT and its
// log flush). A lane uses it to decide how much to take along from idle lanes (see lanes):
// taking a message along saves the transaction it would have had, but its handler then runs
// after the batch's others instead of beside them. So a batch takes along at most as much
// handler time as one transaction costs: with quick handlers (row sync) that is a whole
// batch, with handlers that take longer than a commit nothing, and the lanes work in parallel
// as they would alone.
type applyCosts struct {
	mu             sync.Mutex
	measured       bool
	perMessage     float64 // handler time per message, ns, moving average
	perTransaction float64 // the rest of a batch's transaction, ns, moving average
}

// costWeight is the weight of the newest batch in the moving averages: recent enough to follow
// a change of load within tens of batches, smooth enough that one slow commit does not swing it.
const costWeight = 0.125

// observe records a batch of messages that committed in total, of which handlers was spent in
// the handlers.
func (c *applyCosts) observe(messages int, handlers, total time.Duration) {
	if messages <= 0 || handlers < 0 || total < handlers {
		return
	}
	perMessage := float64(handlers) / float64(messages)
	perTransaction := float64(total - handlers)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.measured {
		c.perMessage, c.perTransaction, c.measured = perMessage, perTransaction, true
		return
	}
	c.perMessage += costWeight * (perMessage - c.perMessage)
	c.perTransaction += costWeight * (perTransaction - c.perTransaction)
}

// takeAlong returns how many messages a batch may take along from idle lanes, at most max:
// as many as the handlers get through in the time of one transaction; none before anything was
// measured.
func (c *applyCosts) takeAlong(max int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.measured:
		return 0
	case c.perMessage*float64(max) <= c.perTransaction:
		return max
	default:
		return int(c.perTransaction / c.perMessage)
	}
}
