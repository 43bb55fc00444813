package publisher

import (
	"context"
	"sync"
)

// deleter merges the DELETEs of partitions that settle while another DELETE is running into
// one statement: at moderate rates the watcher hands rows to one partition after another,
// and each used to commit a DELETE of its own. Each partition's request still returns only
// once its own rows are deleted (partition's deletions track it), so nothing changes for the
// rows; only the statement is shared.
//
// The caller that finds no DELETE running runs one for everything pending. Requests that
// arrive meanwhile go in the next one, run by a short-lived goroutine, so no caller waits for
// more than the statement running when it came and its own. A caller whose context ends
// stops waiting; its rows may still be deleted by that goroutine (they were confirmed), and
// Relay.Run waits for it (at most dbTimeout) before it returns.
type deleter struct {
	del func(ctx context.Context, ids []int64) error // RelayStore.Delete

	mu       sync.Mutex
	running  bool
	pending  []deleteRequest
	followUp sync.WaitGroup // the goroutines running later rounds
}

// maxMergedIDs is the largest DELETE that is merged with others. Larger ones come from a
// partition draining a backlog; sharing their statement made it longer for every partition
// in it without saving a meaningful share of the statements.
const maxMergedIDs = 32

type deleteRequest struct {
	ids  []int64
	done chan error // buffered: a caller that gave up is not waited for
}

// delete deletes ids, possibly in one statement with other partitions' ids, and returns
// when that statement is done or ctx ends.
func (d *deleter) delete(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if len(ids) > maxMergedIDs {
		return d.del(ctx, ids)
	}
	req := deleteRequest{ids: ids, done: make(chan error, 1)}
	d.mu.Lock()
	d.pending = append(d.pending, req)
	lead := !d.running
	d.running = true
	d.mu.Unlock()
	if lead {
		d.run(ctx)
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run deletes the rows of every pending request in one statement and answers them; if more
// arrived meanwhile, a new goroutine does the same for those.
func (d *deleter) run(ctx context.Context) {
	d.mu.Lock()
	batch := d.pending
	d.pending = nil
	d.mu.Unlock()
	ids := batch[0].ids
	if len(batch) > 1 {
		ids = nil
		for _, req := range batch {
			ids = append(ids, req.ids...)
		}
	}
	err := d.del(ctx, ids)
	for _, req := range batch {
		req.done <- err
	}
	d.mu.Lock()
	more := len(d.pending) > 0
	d.running = more
	d.mu.Unlock()
	if more {
		d.followUp.Add(1) // counted before this round's caller can return: wait sees it
		go func() {
			defer d.followUp.Done()
			ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
			defer cancel()
			d.run(ctx)
		}()
	}
}

// wait returns when no round started by a goroutine of its own is running. Call it once
// nobody calls delete any more.
func (d *deleter) wait() { d.followUp.Wait() }
