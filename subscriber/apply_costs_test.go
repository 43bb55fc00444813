package subscriber

import (
	"testing"
	"time"
)

func TestApplyCostsTakeAlongNoMoreHandlerTimeThanATransaction(t *testing.T) {
	var c applyCosts
	if got := c.takeAlong(32); got != 0 {
		t.Fatalf("before any batch: take along %d, want 0", got)
	}
	// 10 messages: 1 ms in the handlers, 2 ms for the rest of the transaction.
	c.observe(10, time.Millisecond, 3*time.Millisecond)
	if got := c.takeAlong(32); got != 20 {
		t.Errorf("100µs handlers, 2ms transactions: take along %d of 32, want 20", got)
	}
	if got := c.takeAlong(8); got != 8 {
		t.Errorf("take along %d of 8, want all 8", got)
	}
	// Handlers that take longer than a transaction: after a few batches nothing is taken along.
	for range 30 {
		c.observe(1, 5*time.Millisecond, 7*time.Millisecond)
	}
	if got := c.takeAlong(32); got != 0 {
		t.Errorf("5ms handlers, 2ms transactions: take along %d, want 0", got)
	}
	// Handlers that take no measurable time: a whole batch.
	var quick applyCosts
	quick.observe(4, 0, time.Millisecond)
	if got := quick.takeAlong(32); got != 32 {
		t.Errorf("instant handlers: take along %d, want 32", got)
	}
	// Nonsense is ignored.
	var ignored applyCosts
	ignored.observe(0, 0, time.Millisecond)
	ignored.observe(3, 2*time.Millisecond, time.Millisecond)
	if ignored.measured {
		t.Error("a batch of no messages, or handlers longer than their transaction, was counted")
	}
}
