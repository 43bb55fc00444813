package publisher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/syncworker/syncworker/outbox"
)

func pendingRows(ids ...int64) []outbox.PendingRow {
	rows := make([]outbox.PendingRow, len(ids))
	for i, id := range ids {
		rows[i].ID = id
	}
	return rows
}

func rowIDs(rows []outbox.PendingRow) []int64 {
	ids := make([]int64, len(rows))
	for i := range rows {
		ids[i] = rows[i].ID
	}
	return ids
}

// Rows whose DELETE runs, or finished but was not forgotten yet, are dropped from reads; a
// failed DELETE's rows come back once forgotten.
func TestDeletionsDropRowsUntilTheirDeleteFinishedAndWasForgotten(t *testing.T) {
	d := newDeletions()
	release := make(chan struct{})
	results := make(chan error, 2)
	ctx := context.Background()
	blockedDel := func(context.Context, []int64) error { <-release; return nil }
	failingDel := func(context.Context, []int64) error { return errors.New("connection lost") }
	d.start([]int64{1, 2}, ctx, blockedDel, func(err error) { results <- err })
	d.start([]int64{5}, ctx, failingDel, func(err error) { results <- err })
	if err := <-results; err == nil {
		t.Fatal("the failing DELETE reported success")
	}

	if got := rowIDs(d.drop(pendingRows(1, 2, 3, 5))); fmt.Sprint(got) != "[3]" {
		t.Fatalf("kept %v, want [3]: 1 and 2 are being deleted, 5's DELETE failed but is not forgotten yet", got)
	}
	d.forgetFinished()
	if got := rowIDs(d.drop(pendingRows(1, 2, 3, 5))); fmt.Sprint(got) != "[3 5]" {
		t.Fatalf("kept %v, want [3 5]: 5's DELETE failed, so it is published again", got)
	}
	close(release)
	if err := <-results; err != nil {
		t.Fatal(err)
	}
	d.wait()
	if got := rowIDs(d.drop(pendingRows(1, 2))); len(got) != 0 {
		t.Fatalf("kept %v before forgetting: a read that began before the DELETE may still hold them", got)
	}
	d.forgetFinished()
	if got := rowIDs(d.drop(pendingRows(1, 2))); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("kept %v, want [1 2] once forgotten", got)
	}
}

// At most maxBackgroundDeletes DELETEs run at once: the next start waits for a slot.
func TestDeletionsBoundTheDeletesInFlight(t *testing.T) {
	d := newDeletions()
	release := make(chan struct{})
	var mu sync.Mutex
	running, most := 0, 0
	del := func(context.Context, []int64) error {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	}
	started := make(chan struct{})
	go func() {
		for i := range maxBackgroundDeletes + 2 {
			d.start([]int64{int64(i)}, context.Background(), del, func(error) {})
		}
		close(started)
	}()
	select {
	case <-started:
		t.Fatalf("%d DELETEs started while none finished; want at most %d", maxBackgroundDeletes+2, maxBackgroundDeletes)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-started
	d.wait()
	if most > maxBackgroundDeletes {
		t.Fatalf("%d DELETEs ran at once, want at most %d", most, maxBackgroundDeletes)
	}
}

// Partitions go on publishing while their DELETEs run (here slowed to 150 ms each), and the
// rows being deleted, which the watcher's reads and their own still see, are not published
// again: every message arrives exactly once.
func TestRowsBeingDeletedAreNotPublishedAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	reads := &readCounter{}
	cfg := e.config()
	cfg.Partitions = 4
	cfg.Metrics = reads
	e.start(cfg, func(r *Relay) {
		del := r.deleter.del
		r.deleter.del = func(ctx context.Context, ids []int64) error {
			time.Sleep(150 * time.Millisecond)
			return del(ctx, ids)
		}
	})
	const total = 600
	msgs, want := e.keyedMessages(total, 13)
	<-e.writePaced(msgs, 3, 5*time.Millisecond)
	e.waitAll(c, want, 60*time.Second)
	if n := c.maxCopies(); n != 1 {
		t.Errorf("a message arrived %d times: a row was published again while its DELETE ran", n)
	}
	if reads.handOffs.Load() == 0 {
		t.Errorf("no hand-offs: the partitions never took rows while their DELETEs ran")
	}
	t.Logf("hand-offs %d, own reads %d, DELETE statements %d", reads.handOffs.Load(), reads.ownReads.Load(), reads.deletes.Load())
}
