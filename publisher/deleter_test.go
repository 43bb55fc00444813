package publisher

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// scriptedDeletes records every statement the deleter runs; the first statement blocks until
// the test closes gate, when gate is set, and the second likewise with gate2.
type scriptedDeletes struct {
	mu    sync.Mutex
	calls [][]int64
	gate  chan struct{}
	gate2 chan struct{}
	fail  map[int]error // by call number
}

func (s *scriptedDeletes) del(ctx context.Context, ids []int64) error {
	s.mu.Lock()
	n := len(s.calls)
	s.calls = append(s.calls, slices.Clone(ids))
	err := s.fail[n]
	var gate chan struct{}
	switch n {
	case 0:
		gate = s.gate
	case 1:
		gate = s.gate2
	}
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (s *scriptedDeletes) statements() [][]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func waitPending(t *testing.T, d *deleter, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		d.mu.Lock()
		got := len(d.pending)
		d.mu.Unlock()
		if got == n {
			return
		}
	}
	t.Fatalf("%d requests never queued behind the running DELETE", n)
}

// deleteAsync runs d.delete in a goroutine and returns its result channel.
func deleteAsync(ctx context.Context, d *deleter, ids ...int64) chan error {
	done := make(chan error, 1)
	go func() { done <- d.delete(ctx, ids) }()
	return done
}

func TestDeleterMergesDeletesThatArriveWhileOneRuns(t *testing.T) {
	s := &scriptedDeletes{gate: make(chan struct{}), fail: map[int]error{2: errors.New("connection lost")}}
	d := &deleter{del: s.del}
	ctx := t.Context()
	first := deleteAsync(ctx, d, 1, 2)
	for len(s.statements()) == 0 {
		time.Sleep(time.Millisecond)
	}
	second, third := deleteAsync(ctx, d, 3), deleteAsync(ctx, d, 4, 5)
	waitPending(t, d, 2)
	big := make([]int64, maxMergedIDs+1)
	for i := range big {
		big[i] = int64(100 + i)
	}
	if err := d.delete(ctx, big); err != nil { // a backlog-sized DELETE runs on its own, at once
		t.Fatal(err)
	}
	close(s.gate)
	if err := <-first; err != nil {
		t.Fatalf("first caller: %v", err)
	}
	for name, done := range map[string]chan error{"second": second, "third": third} {
		if err := <-done; err == nil || err.Error() != "connection lost" {
			t.Fatalf("%s caller got %v, want the error of the statement its rows were in", name, err)
		}
	}
	got := s.statements()
	want := [][]int64{{1, 2}, big, {3, 4, 5}}
	if len(got) != 3 || !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) ||
		!slices.Equal(sorted(got[2]), want[2]) {
		t.Fatalf("statements %v, want %v: the two requests that waited share one", got, want)
	}
	if err := d.delete(ctx, []int64{6}); err != nil {
		t.Fatalf("deleter unusable after a failed statement: %v", err)
	}
}

// abandonSecond starts a delete of row 1 (its statement held by s.gate), queues row 2 behind
// it and has that caller give up. It returns the first caller's result.
func abandonSecond(t *testing.T, d *deleter, s *scriptedDeletes) chan error {
	t.Helper()
	first := deleteAsync(t.Context(), d, 1)
	for len(s.statements()) == 0 {
		time.Sleep(time.Millisecond)
	}
	impatient, cancel := context.WithCancel(t.Context())
	gaveUp := deleteAsync(impatient, d, 2)
	waitPending(t, d, 1)
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("caller whose context ended got %v", err)
	}
	return first
}

func TestDeleterCallerThatGivesUpDoesNotStallTheOthers(t *testing.T) {
	s := &scriptedDeletes{gate: make(chan struct{})}
	d := &deleter{del: s.del}
	first := abandonSecond(t, d, s)
	close(s.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // later callers, some while the abandoned request's statement runs
		if err := d.delete(t.Context(), []int64{int64(10 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	deleted := map[int64]bool{}
	for _, st := range s.statements() {
		for _, id := range st {
			deleted[id] = true
		}
	}
	if len(deleted) != 22 {
		t.Fatalf("deleted %d distinct ids, want 22 (the abandoned request's row too: it was confirmed)", len(deleted))
	}
}

func sorted(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// The round that deletes the rows of a caller that gave up runs on after it, and Relay.Run
// must not return before it ends (deleter.wait): the database may be closed right after Run.
func TestDeleterWaitCoversTheRoundOfACallerThatGaveUp(t *testing.T) {
	s := &scriptedDeletes{gate: make(chan struct{}), gate2: make(chan struct{})}
	d := &deleter{del: s.del}
	first := abandonSecond(t, d, s)
	close(s.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for len(s.statements()) < 2 { // the abandoned request's round, in a goroutine of its own
		time.Sleep(time.Millisecond)
	}
	waited := make(chan struct{})
	go func() { d.wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("wait returned while the abandoned request's DELETE still runs")
	case <-time.After(50 * time.Millisecond):
	}
	close(s.gate2)
	<-waited
}
