package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

func newStoreDB(t *testing.T) *testenv.Database {
	t.Helper()
	db := testenv.NewDatabase(t)
	if err := outbox.Migrate(context.Background(), db.DB); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

func writeMsgs(t *testing.T, db *testenv.Database, msgs ...outbox.Message) {
	t.Helper()
	tx, err := db.DB.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Write(context.Background(), tx, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func ids(rows []outbox.PendingRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.MessageID)
	}
	return out
}

// Fetch reads one partition in key order; a row waiting for its retry holds back the later
// rows of its key in strict mode only; failures past the limit move to the dead table.
func TestRelayStoreFetchFailAndDead(t *testing.T) {
	t.Parallel()
	db := newStoreDB(t)
	ctx := context.Background()
	store, err := outbox.NewRelayStore(db.DB, outbox.Tables{})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []outbox.Message
	for i := 0; i < 3; i++ {
		for _, key := range []string{"a", "b"} {
			msgs = append(msgs, outbox.Message{ID: fmt.Sprintf("%s%d", key, i), Exchange: "x", PartitionKey: key,
				Payload: []byte("p"), Headers: map[string]string{"h": "v"}})
		}
	}
	writeMsgs(t, db, msgs...)
	all := outbox.FetchRequest{Lo: 0, Hi: ^uint32(0), Limit: 100, Strict: true}
	res, err := store.Fetch(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 6 || res.Full {
		t.Fatalf("fetched %v (full %v), want all 6 and the range read to its end", ids(res.Rows), res.Full)
	}
	pos := map[string]int{}
	for i, r := range res.Rows {
		pos[r.MessageID] = i
	}
	if !(pos["a0"] < pos["a1"] && pos["a1"] < pos["a2"] && pos["b0"] < pos["b1"] && pos["b1"] < pos["b2"]) {
		t.Errorf("rows of a key out of write order: %v", ids(res.Rows))
	}
	if h, _ := outbox.DecodeHeaders(res.Rows[0].Headers); h["h"] != "v" || res.Rows[0].CreatedAt.IsZero() {
		t.Errorf("row fields not read back: headers %v, created %v", h, res.Rows[0].CreatedAt)
	}
	// Only key a's partition: a0..a2 and nothing else.
	lo, hi := outbox.PartitionHash("a"), outbox.PartitionHash("a")
	onlyA, err := store.Fetch(ctx, outbox.FetchRequest{Lo: lo, Hi: hi, Limit: 2})
	if err != nil || len(onlyA.Rows) != 2 || onlyA.Rows[0].MessageID != "a0" || onlyA.Rows[1].MessageID != "a1" {
		t.Fatalf("fetch of key a's hash with limit 2 = %v, %v; want a0 a1", ids(onlyA.Rows), err)
	}
	if !onlyA.Full {
		t.Errorf("a fetch that stopped at its limit does not say it is full")
	}

	// a0 fails: strict holds back a1 and a2, relaxed lets them go.
	a0 := onlyA.Rows[0].ID
	if err := store.RecordFailures(ctx, []outbox.Failure{{ID: a0, Error: "boom", Delay: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	res, _ = store.Fetch(ctx, all)
	if got := ids(res.Rows); len(got) != 3 || res.Blocked != 2 || res.RetryIn < 59*time.Minute {
		t.Errorf("strict fetch after a0 failed = %v (blocked %d, retry in %s); want b0 b1 b2, 2 blocked, ~1h", got, res.Blocked, res.RetryIn)
	}
	all.Strict = false
	res, _ = store.Fetch(ctx, all)
	if got := ids(res.Rows); len(got) != 5 {
		t.Errorf("relaxed fetch after a0 failed = %v; want all but a0", got)
	}
	// A small page size still finds rows behind the waiting ones.
	paged, _ := store.Fetch(ctx, outbox.FetchRequest{Lo: lo, Hi: hi, Limit: 1, MaxScan: 10})
	if got := ids(paged.Rows); len(got) != 1 || got[0] != "a1" {
		t.Errorf("relaxed fetch with limit 1 = %v; want a1", got)
	}

	// a0 dies: it moves to the dead table with its error, in one transaction.
	if err := store.RecordFailures(ctx, []outbox.Failure{{ID: a0, Error: "final", Dead: true}}); err != nil {
		t.Fatal(err)
	}
	dead, _ := outbox.NewDeadStore(db.DB, outbox.Tables{})
	list, err := dead.List(ctx, 0, 10)
	if err != nil || len(list) != 1 || list[0].MessageID != "a0" || list[0].Attempts != 2 || list[0].LastError != "final" {
		t.Fatalf("dead list = %+v, %v; want a0 with 2 attempts and error final", list, err)
	}
	res, _ = store.Fetch(ctx, outbox.FetchRequest{Lo: 0, Hi: ^uint32(0), Limit: 100, Strict: true})
	if len(res.Rows) != 5 {
		t.Errorf("after a0 died the strict fetch = %v; want the 5 others (a dead row stops blocking)", ids(res.Rows))
	}
	// Deleting published rows.
	var del []int64
	for _, r := range res.Rows {
		del = append(del, r.ID)
	}
	if err := store.Delete(ctx, del); err != nil {
		t.Fatal(err)
	}
	backlog, _, err := store.Stats(ctx)
	if err != nil || backlog != 0 {
		t.Errorf("backlog after delete = %d, %v; want 0", backlog, err)
	}

	// Retry brings the dead row back with attempts reset; purge removes dead rows for good.
	if n, err := dead.Retry(ctx, nil); err != nil || n != 1 {
		t.Fatalf("Retry(all) = %d, %v; want 1", n, err)
	}
	res, _ = store.Fetch(ctx, outbox.FetchRequest{Lo: 0, Hi: ^uint32(0), Limit: 100, Strict: true})
	if len(res.Rows) != 1 || res.Rows[0].MessageID != "a0" || res.Rows[0].Attempts != 0 {
		t.Fatalf("after retry the outbox holds %+v; want a0 with 0 attempts", res.Rows)
	}
	if err := store.RecordFailures(ctx, []outbox.Failure{{ID: res.Rows[0].ID, Error: "again", Dead: true}}); err != nil {
		t.Fatal(err)
	}
	if n, err := dead.Purge(ctx, []int64{999999}); err != nil || n != 0 {
		t.Errorf("Purge(unknown id) = %d, %v; want 0", n, err)
	}
	list, _ = dead.List(ctx, 0, 10)
	if n, err := dead.Purge(ctx, []int64{list[0].ID}); err != nil || n != 1 {
		t.Errorf("Purge = %d, %v; want 1", n, err)
	}
	if n, _ := dead.Count(ctx); n != 0 {
		t.Errorf("%d dead rows after purge, want 0", n)
	}
}

// Leases: one owner at a time, tokens grow with each change of hands, expiry by the database
// clock lets another member take over, release frees at once.
func TestLeaseStore(t *testing.T) {
	t.Parallel()
	db := newStoreDB(t)
	ctx := context.Background()
	s, err := outbox.NewLeaseStore(db.DB, outbox.Tables{})
	if err != nil {
		t.Fatal(err)
	}
	const g = "g/4"
	if err := s.EnsurePartitions(ctx, g, 4); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsurePartitions(ctx, g, 4); err != nil {
		t.Fatalf("EnsurePartitions twice: %v", err)
	}
	for _, m := range []string{"m1", "m2"} {
		if err := s.Join(ctx, g, m, "i-"+m, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.LiveMembers(ctx, g); n != 2 {
		t.Errorf("live members = %d, want 2", n)
	}
	free, _ := s.Claimable(ctx, g, 4)
	if len(free) != 4 {
		t.Fatalf("claimable = %v, want all 4", free)
	}
	// Long enough to be certainly live at the Renew below, a few round trips later.
	tok, ok, err := s.Acquire(ctx, g, "m1", "i-m1", 0, 5*time.Second)
	if err != nil || !ok || tok != 1 {
		t.Fatalf("m1 acquire 0 = %d, %v, %v; want token 1", tok, ok, err)
	}
	if _, ok, _ := s.Acquire(ctx, g, "m2", "i-m2", 0, time.Minute); ok {
		t.Fatalf("m2 took partition 0 while m1 holds it")
	}
	// The renewal sets the expiry to 1 s from now, shortening the lease, so the takeover below
	// comes soon.
	held, err := s.Renew(ctx, g, "m1", "i-m1", time.Second)
	if err != nil || len(held) != 1 || held[0] != 1 {
		t.Fatalf("m1 renew = %v, %v; want {0: 1}", held, err)
	}
	// m1 stops renewing: after expiry m2 takes the partition with a new token and m1 sees it lost.
	testenv.Eventually(t, 5*time.Second, func() (bool, string) {
		tok, ok, err = s.Acquire(ctx, g, "m2", "i-m2", 0, time.Minute)
		return ok, fmt.Sprintf("m2 could not take the expired lease (%v)", err)
	})
	if tok != 2 {
		t.Errorf("token after takeover = %d, want 2", tok)
	}
	if held, _ := s.Renew(ctx, g, "m1", "i-m1", time.Minute); len(held) != 0 {
		t.Errorf("m1 still holds %v after losing partition 0", held)
	}
	if err := s.Release(ctx, g, "m2", "i-m2", []int{0}); err != nil {
		t.Fatal(err)
	}
	if free, _ := s.Claimable(ctx, g, 4); len(free) != 4 {
		t.Errorf("claimable after release = %v, want all 4", free)
	}
	if err := s.Leave(ctx, g, "m1", "i-m1"); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.LiveMembers(ctx, g); n != 1 {
		t.Errorf("live members after m1 left = %d, want 1", n)
	}
}

// WrittenAt places a row's write on this process's clock from its age on the database clock,
// so latency metrics hold whatever the time zone or clock skew between the two machines.
func TestFetchGivesWrittenAtOnTheLocalClock(t *testing.T) {
	t.Parallel()
	db := newStoreDB(t)
	before := time.Now()
	writeMsgs(t, db, outbox.Message{ID: "w1", Exchange: "x"})
	time.Sleep(20 * time.Millisecond) // the row ages a little before it is read
	store, err := outbox.NewRelayStore(db.DB, outbox.Tables{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.Fetch(context.Background(), outbox.FetchRequest{Lo: 0, Hi: ^uint32(0), Limit: 10})
	if err != nil || len(res.Rows) != 1 {
		t.Fatalf("fetch: %v, %d rows", err, len(res.Rows))
	}
	w := res.Rows[0].WrittenAt
	if w.Before(before.Add(-time.Second)) || w.After(time.Now()) || time.Since(w) < 20*time.Millisecond {
		t.Fatalf("WrittenAt %v is not between the write (%v) and 20ms before now", w, before)
	}
}

// A fetch into a caller's array fills it from its start (whatever it held before) and reads
// the same rows as a fetch that allocates.
func TestFetchIntoReusesTheCallersArray(t *testing.T) {
	t.Parallel()
	db := newStoreDB(t)
	writeMsgs(t, db, outbox.Message{ID: "r1", Exchange: "x", PartitionKey: "k"},
		outbox.Message{ID: "r2", Exchange: "x", PartitionKey: "k"})
	store, err := outbox.NewRelayStore(db.DB, outbox.Tables{})
	if err != nil {
		t.Fatal(err)
	}
	into := make([]outbox.PendingRow, 1, 8)
	into[0] = outbox.PendingRow{MessageID: "stale"}
	res, err := store.Fetch(context.Background(), outbox.FetchRequest{Lo: 0, Hi: ^uint32(0), Limit: 10, Into: into})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res.Rows); len(got) != 2 || got[0] != "r1" || got[1] != "r2" {
		t.Fatalf("fetched %v, want [r1 r2]", got)
	}
	if &res.Rows[0] != &into[:1][0] {
		t.Error("the rows are not in the array given as Into")
	}
}
