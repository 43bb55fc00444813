package outbox_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// FetchRanges reads several partitions in one walk: per range its ready rows in key order,
// whether a row waits for a retry, and whether the walk got to the range's end before the
// row or byte limit stopped it.
func TestFetchRangesReadsPartitionsInOneWalk(t *testing.T) {
	t.Parallel()
	db := newStoreDB(t)
	ctx := context.Background()
	var msgs []outbox.Message
	add := func(key string, n int) {
		for s := 0; s < n; s++ {
			msgs = append(msgs, outbox.Message{ID: fmt.Sprint(key, "/", s), Exchange: "x", PartitionKey: key,
				Payload: []byte("0123456789")})
		}
	}
	a, b, c, d := testenv.KeyIn("p", 0, 4), testenv.KeyIn("p", 1, 4), testenv.KeyIn("p", 2, 4), testenv.KeyIn("p", 3, 4)
	add(a, 2)
	add(b, 3)
	add(c, 2)
	add(d, 1)
	writeMsgs(t, db, msgs...)
	store, err := outbox.NewRelayStore(db.DB, outbox.Tables{})
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := outbox.PartitionRange(1, 4)
	res, err := store.Fetch(ctx, outbox.FetchRequest{Lo: lo, Hi: hi, Limit: 1})
	if err != nil || len(res.Rows) != 1 {
		t.Fatalf("fetch %s/0: %v %v", b, res.Rows, err)
	}
	if err := store.RecordFailures(ctx, []outbox.Failure{{ID: res.Rows[0].ID, Error: "test", Delay: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	ranges := make([]outbox.HashRange, 3)
	for i := range ranges {
		ranges[i].Lo, ranges[i].Hi = outbox.PartitionRange(i, 4)
	}

	got, err := store.FetchRanges(ctx, ranges, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		ids      string
		complete bool
		waiting  bool
	}{{a + "/0 " + a + "/1", true, false}, {b + "/1 " + b + "/2", true, true}, {c + "/0 " + c + "/1", true, false}}
	for i, w := range want {
		if g := strings.Join(ids(got[i].Rows), " "); g != w.ids || got[i].Complete != w.complete || got[i].Waiting != w.waiting {
			t.Errorf("range %d: rows %q complete %v waiting %v, want %q %v %v", i, g, got[i].Complete, got[i].Waiting, w.ids, w.complete, w.waiting)
		}
	}

	// Three rows: the walk passed the end of the first range only.
	got, err = store.FetchRanges(ctx, ranges, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Complete || got[1].Complete || got[2].Complete || len(got[0].Rows) != 2 || len(got[2].Rows) != 0 {
		t.Errorf("limit 3: complete %v %v %v, rows %d/%d/%d; want only the first range complete",
			got[0].Complete, got[1].Complete, got[2].Complete, len(got[0].Rows), len(got[1].Rows), len(got[2].Rows))
	}
	// 15 payload bytes: the walk stops at the second row, inside the first range.
	got, err = store.FetchRanges(ctx, ranges, 100, 15)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Complete || len(got[0].Rows) != 2 || len(got[1].Rows) != 0 {
		t.Errorf("15 bytes: first range complete %v with %d rows, second %d rows; want 2 rows, not complete",
			got[0].Complete, len(got[0].Rows), len(got[1].Rows))
	}

	if _, err := store.FetchRanges(ctx, []outbox.HashRange{ranges[1], ranges[0]}, 100, 0); err == nil || !strings.Contains(err.Error(), "range 1") {
		t.Errorf("ranges out of order: error %v, want one naming range 1", err)
	}
	if got, err := store.FetchRanges(ctx, nil, 100, 0); err != nil || got != nil {
		t.Errorf("no ranges: %v, %v; want nothing", got, err)
	}
}
