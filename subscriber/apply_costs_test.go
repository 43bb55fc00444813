package subscriber

import (
	"testing"
	"time"
)

func TestApplyCostsKeepABatchsHandlersWithinAQuarterOfATransaction(t *testing.T) {
	var c applyCosts
	if got := c.takeAlong(1, 31); got != 0 {
		t.Fatalf("before any batch: take along %d, want 0", got)
	}
	// 10 messages: 1 ms in the handlers, 2 ms for the rest of the transaction. A quarter of
	// the transaction, 0.5 ms, is the handlers of 5 messages.
	c.observe(10, time.Millisecond, 3*time.Millisecond)
	for _, tc := range []struct{ batched, room, want int }{
		{1, 31, 4}, // 1 + 4 = 5
		{0, 3, 3},  // all that fits in the room
		{5, 27, 0}, // full already
		{9, 23, 0}, // over the budget on its own: nothing, not less than nothing
	} {
		if got := c.takeAlong(tc.batched, tc.room); got != tc.want {
			t.Errorf("100µs handlers, 2ms transactions, batch of %d with room for %d: take along %d, want %d",
				tc.batched, tc.room, got, tc.want)
		}
	}
	// Handlers that take a millisecond against 3 ms transactions: after a few batches nothing
	// is taken along.
	for range 30 {
		c.observe(1, time.Millisecond, 4*time.Millisecond)
	}
	if got := c.takeAlong(1, 31); got != 0 {
		t.Errorf("1ms handlers, 3ms transactions: take along %d, want 0", got)
	}
	// Handlers that take no measurable time: a whole batch.
	var quick applyCosts
	quick.observe(4, 0, time.Millisecond)
	if got := quick.takeAlong(1, 31); got != 31 {
		t.Errorf("instant handlers: take along %d, want 31", got)
	}
	// Nonsense is ignored.
	var ignored applyCosts
	ignored.observe(0, 0, time.Millisecond)
	ignored.observe(3, 2*time.Millisecond, time.Millisecond)
	if ignored.measured {
		t.Error("a batch of no messages, or handlers longer than their transaction, was counted")
	}
}
