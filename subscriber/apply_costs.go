package subscriber

import (
	"sync"
	"time"
)

// applyCosts estimates, from the batches applied so far, how long the handlers take per
// message and what a transaction costs besides them (BEGIN, the inbox insert, COMMIT and its
// log flush). A lane uses it to decide how much to take along from idle lanes (see lanes):
// taking a message along saves the transaction it would have had, but its handler then starts
// after those of the messages before it in the batch instead of at once in a transaction of
// its own. So a batch takes along only while all its handlers together take at most a quarter
// of what a transaction costs, which bounds that delay to a small part of the least any
// message waits anyway: quick handlers (row sync, a few inserts) share transactions; a handler
// that waits on something for a millisecond or more keeps its lane to itself.
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

// takeAlong returns how many messages a batch that holds batched may take along from idle
// lanes, at most room; none before anything was measured.
func (c *applyCosts) takeAlong(batched, room int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.measured {
		return 0
	}
	budget := c.perTransaction / takeAlongShare // handler time the whole batch may take
	if c.perMessage*float64(batched+room) <= budget {
		return room
	}
	return min(room, max(0, int(budget/c.perMessage)-batched))
}

// takeAlongShare: a batch that takes along keeps its handlers within 1/takeAlongShare of a
// transaction's own cost (see applyCosts).
const takeAlongShare = 4
