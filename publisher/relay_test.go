package publisher

import (
	"math/rand/v2"
	"testing"
	"time"
)

// Rows become visible out of id order (ids are handed out at INSERT, transactions commit in
// any order): every one must still be published, none lost, none more than twice.
func TestConcurrentWritersOutOfOrderCommits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	e.start(e.config())
	want := e.writeConcurrently(16, 200, 1000, func() time.Duration {
		return time.Duration(rand.IntN(5000)) * time.Microsecond
	})
	e.waitAll(c, want, 60*time.Second)
	if got := c.distinct(); got != len(want) {
		t.Errorf("%d distinct messages arrived, want %d", got, len(want))
	}
	if n := c.maxCopies(); n > 2 {
		t.Errorf("a message arrived %d times, want at most twice", n)
	}
}
