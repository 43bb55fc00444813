package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// scanFixture writes, for each key, follow[key] messages after a first one that then fails
// and waits an hour for its retry (all of them fail when failAll), and ready messages of key
// free; it returns the store.
func scanFixture(t *testing.T, follow map[string]int, failAll bool, free string, ready int) *outbox.RelayStore {
	t.Helper()
	db := newStoreDB(t)
	ctx := context.Background()
	var msgs []outbox.Message
	for key, n := range follow {
		for s := 0; s <= n; s++ {
			msgs = append(msgs, outbox.Message{ID: fmt.Sprint(key, "/", s), Exchange: "x", PartitionKey: key})
		}
	}
	for s := 0; s < ready; s++ {
		msgs = append(msgs, outbox.Message{ID: fmt.Sprint(free, "/", s), Exchange: "x", PartitionKey: free})
	}
	writeMsgs(t, db, msgs...)
	store, err := outbox.NewRelayStore(db.DB, outbox.Tables{})
	if err != nil {
		t.Fatal(err)
	}
	all, err := store.Fetch(ctx, outbox.FetchRequest{Lo: 0, Hi: ^uint32(0), Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	var failures []outbox.Failure
	for _, r := range all.Rows {
		if _, stuck := follow[r.PartitionKey]; stuck && (failAll || r.MessageID == r.PartitionKey+"/0") {
			failures = append(failures, outbox.Failure{ID: r.ID, Error: "test", Delay: time.Hour})
		}
	}
	if err := store.RecordFailures(ctx, failures); err != nil {
		t.Fatal(err)
	}
	return store
}

// In strict order a long run of held-back rows of one key is skipped after a few rows, not
// read to its end.
func TestStrictFetchSkipsTheRestOfAHeldBackKey(t *testing.T) {
	t.Parallel()
	keys := testenv.KeysInHashOrder("s", 2)
	stuck, free := keys[0], keys[1]
	store := scanFixture(t, map[string]int{stuck: 300}, false, free, 3)
	res, err := store.Fetch(context.Background(), outbox.FetchRequest{Lo: 0, Hi: ^uint32(0), Limit: 500, MaxScan: 1000, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res.Rows); len(got) != 3 || got[0] != free+"/0" || got[2] != free+"/2" {
		t.Fatalf("fetched %v, want %s/0..2", got, free)
	}
	if res.Scanned > 100 || res.Truncated {
		t.Errorf("read %d rows (truncated %v): the held-back run of 300 rows should have been skipped", res.Scanned, res.Truncated)
	}
}

// A fetch that reads MaxScan rows without reaching the end says where to continue, and
// continuing from there reaches the ready rows behind the held-back ones, always moving on.
func TestFetchContinuesPastMaxScanFromNext(t *testing.T) {
	t.Parallel()
	for _, strict := range []bool{true, false} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			t.Parallel()
			keys := testenv.KeysInHashOrder("c", 8)
			follow := map[string]int{}
			for _, key := range keys[:6] {
				follow[key] = 3 // a failed row and 3 later ones: 4 rows a key, 24 in all
			}
			free := keys[7]
			if !strict {
				// Relaxed order holds back failed rows only: one key whose ten rows all failed,
				// more than MaxScan, so a fetch spends its whole budget inside one hash.
				follow = map[string]int{keys[0]: 9}
			}
			store := scanFixture(t, follow, !strict, free, 2)
			// Pages of 3 and a budget of 5 cut the scan in the middle of a key's rows: the
			// continuation must decide that key from its first (failed) row again.
			req := outbox.FetchRequest{Lo: 0, Hi: ^uint32(0), Limit: 3, MaxScan: 5, Strict: strict}
			var got []string
			for i := 0; ; i++ {
				if i == 20 {
					t.Fatalf("20 fetches and the ready rows were not reached; got %v", got)
				}
				res, err := store.Fetch(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ids(res.Rows)...)
				if len(res.Rows) > 0 || !res.Truncated {
					break // the relay would publish and delete these before it continues
				}
				if res.Next <= req.From {
					t.Fatalf("fetch from %d continued at %d: no progress", req.From, res.Next)
				}
				req.From = res.Next
			}
			if len(got) != 2 || got[0] != free+"/0" || got[1] != free+"/1" {
				t.Fatalf("fetched %v over the pass, want only %s/0 and %s/1", got, free, free)
			}
		})
	}
}

// A strict fetch reports the rows it found waiting for their retry (hash and time until due),
// and a fetch that skips those hashes reads none of their rows, held-back ones included, while
// the other rows come as before. A relaxed fetch reports no waits.
func TestFetchReportsWaitsAndSkipsHashes(t *testing.T) {
	t.Parallel()
	keys := testenv.KeysInHashOrder("w", 3)
	stuckA, free, stuckB := keys[0], keys[1], keys[2]
	store := scanFixture(t, map[string]int{stuckA: 10, stuckB: 10}, false, free, 3)
	ctx := context.Background()
	req := outbox.FetchRequest{Lo: 0, Hi: ^uint32(0), Limit: 500, Strict: true}
	res, err := store.Fetch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Waits) != 2 || res.Waits[0].Hash != outbox.PartitionHash(stuckA) || res.Waits[1].Hash != outbox.PartitionHash(stuckB) {
		t.Fatalf("waits %+v, want the hashes of %s and %s", res.Waits, stuckA, stuckB)
	}
	for _, w := range res.Waits {
		if w.In < 59*time.Minute || w.In > time.Hour {
			t.Errorf("wait %s, want about the hour the rows were failed for", w.In)
		}
	}
	if res.Scanned != 25 {
		t.Errorf("scanned %d rows without skipping, want all 25", res.Scanned)
	}
	req.Skip = []uint32{res.Waits[0].Hash, res.Waits[1].Hash}
	skipped, err := store.Fetch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(skipped.Rows); len(got) != 3 || got[0] != free+"/0" || skipped.Scanned != 3 || len(skipped.Waits) != 0 {
		t.Fatalf("skipping: fetched %v, scanned %d, waits %+v; want only %s's 3 rows", got, skipped.Scanned, skipped.Waits, free)
	}
	req.Skip, req.Strict = nil, false
	if relaxed, err := store.Fetch(ctx, req); err != nil || len(relaxed.Waits) != 0 {
		t.Fatalf("relaxed fetch: waits %+v, err %v; want none", relaxed.Waits, err)
	}
	req.Skip = make([]uint32, outbox.MaxSkip+1)
	if _, err := store.Fetch(ctx, req); err == nil {
		t.Fatal("a fetch skipping more than MaxSkip hashes was accepted")
	}
}
